// The audible and visible cue: a new alarm rings (Web Audio, no sound files) and flashes the
// banner; while an alarm waits unanswered a short reminder sounds every REMIND_MS. Mute is
// remembered on this screen (localStorage); the flash and the title count stay when muted.

const MUTE_KEY = "telecare.muted";
const REMIND_MS = 20000;

let context = null;

// Browsers start audio only after a user gesture: called on sign-in and on every keypress.
export function unlockAudio() {
  if (!context) {
    const Audio = window.AudioContext || window.webkitAudioContext;
    if (!Audio) return;
    context = new Audio();
  }
  if (context.state === "suspended") context.resume();
}

export function muted() {
  return localStorage.getItem(MUTE_KEY) === "1";
}

export function setMuted(value) {
  localStorage.setItem(MUTE_KEY, value ? "1" : "0");
  document.body.classList.toggle("muted", value);
}

function tone(frequencies, { step = 0.18, gain = 0.25 } = {}) {
  if (!context || muted()) return;
  const start = context.currentTime + 0.02;
  frequencies.forEach((frequency, i) => {
    const osc = context.createOscillator();
    const amp = context.createGain();
    osc.type = "square";
    osc.frequency.value = frequency;
    const t = start + i * step;
    amp.gain.setValueAtTime(0, t);
    amp.gain.linearRampToValueAtTime(gain, t + 0.01);
    amp.gain.exponentialRampToValueAtTime(0.001, t + step * 0.9);
    osc.connect(amp).connect(context.destination);
    osc.start(t);
    osc.stop(t + step);
  });
}

export const ring = () => tone([988, 740, 988, 740, 988, 740]);
export const chime = () => tone([660, 880], { step: 0.25, gain: 0.15 });
const remind = () => tone([988, 740], { step: 0.15, gain: 0.12 });

export function flash(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = false;
  banner.classList.remove("flash");
  void banner.offsetWidth; // restart the animation
  banner.classList.add("flash");
}

export function clearFlash() {
  document.getElementById("banner").hidden = true;
}

// Title badge and reminders follow the number of alarms waiting.
let reminder = null;
export function waitingAlarms(count) {
  document.title = count ? `(${count}) Telecare console` : "Telecare console";
  if (count && !reminder) reminder = setInterval(remind, REMIND_MS);
  if (!count && reminder) {
    clearInterval(reminder);
    reminder = null;
    clearFlash();
  }
}
