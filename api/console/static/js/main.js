// The console: sign-in, the screens (#/queue, #/fleet, #/migration, #/device/ID), the event
// stream that keeps the queue live, and what stays on the top bar.

import { api, whenUnauthorized } from "./api.js";
import { AnswerFigures } from "./answer_figures.js";
import { chime, flash, muted, ring, setMuted, unlockAudio, waitingAlarms } from "./cue.js";
import { DeviceView } from "./device_view.js";
import { announce } from "./dom.js";
import { FleetView } from "./fleet_view.js";
import { label, subject } from "./format.js";
import { fillHelp, listen } from "./keys.js";
import { MigrationView } from "./migration_view.js";
import { asksForHelp } from "./priority.js";
import { QueueStore } from "./queue_store.js";
import { QueueView } from "./queue_view.js";
import { forget, keep, token } from "./session.js";
import { EventStream } from "./stream.js";

const $ = (id) => document.getElementById(id);
const WALL_KEY = "telecare.wall";

let session = null;
let stream = null;
let figures = null;
let store = null;
let queueView = null;
let view = null;
let unmount = () => {};

function showSignIn(message = "") {
  stream?.stop();
  figures?.stop();
  unmount();
  unmount = () => {};
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token").value = "";
  $("token").focus();
  waitingAlarms(0);
}

async function signIn(event) {
  event.preventDefault();
  unlockAudio();
  const candidate = $("token").value.trim();
  try {
    session = await api("/session", { bearer: candidate });
  } catch (error) {
    $("signin-error").textContent =
      error.status === 401 ? "That token is not valid (or was revoked)." : error.message;
    return;
  }
  keep(candidate);
  start();
}

function signOut() {
  forget();
  session = null;
  showSignIn("Signed out.");
}

function setLive(state, detail) {
  const badge = $("live");
  badge.className = `live ${state}`;
  badge.textContent = { live: "● Live", connecting: "Connecting…", reconnecting: "Reconnecting…",
    offline: "Offline" }[state];
  badge.title = detail ?? "";
}

function arrival(entry) {
  queueView.arrived(entry);
  const what = `${label(entry.item.event ?? entry.item.type)} · ${subject(entry.item)}`;
  if (asksForHelp(entry)) {
    ring();
    flash(`NEW ALARM: ${what}`);
    announce(`New alarm: ${what}`);
  } else if (entry.item.severity === "critical") {
    chime();
    announce(`New critical alert: ${what}`);
  }
}

function start() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").textContent = session.name;
  $("signout").title = `sign out ${session.name} (${session.role})`;
  document.body.classList.toggle("read-only", !session.may_act);
  store = new QueueStore();
  store.onArrival = arrival;
  store.subscribe(() => waitingAlarms(store.counts().alarmsWaiting));
  figures = new AnswerFigures($("answer-figures"));
  figures.start();
  queueView = new QueueView(store, session, { onFiguresStale: () => figures.refresh() });
  stream = new EventStream({
    onHello: (_, first) => { if (first) store.load().catch(loadFailed); },
    onReset: () => store.load().catch(loadFailed),
    onChange: (event) => store.apply(event),
    onStatus: setLive,
    onUnauthorized: () => showSignIn("Your token was refused. Sign in again."),
  });
  stream.start();
  route();
}

function loadFailed(error) {
  console.error("queue not loaded", error);
  announce(`The queue could not be loaded: ${error.message}`);
}

function route() {
  if (!session) return;
  unmount();
  const [, screen, arg] = location.hash.match(/^#\/([a-z]+)\/?(.*)$/) ?? [];
  if (screen === "device" && arg) view = new DeviceView(decodeURIComponent(arg), store, session);
  else if (screen === "fleet") view = new FleetView();
  else if (screen === "migration") view = new MigrationView();
  else view = queueView;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.screen === (screen ?? "queue"));
  }
  unmount = view.mount($("view"));
}

function toggleWall(on = !document.documentElement.classList.contains("wall")) {
  document.documentElement.classList.toggle("wall", on);
  localStorage.setItem(WALL_KEY, on ? "1" : "0");
}

function toggleMute() {
  setMuted(!muted());
  $("mute").textContent = muted() ? "Sound off" : "Sound on";
  $("mute").setAttribute("aria-pressed", String(muted()));
  announce(muted() ? "Alarm sound muted" : "Alarm sound on");
}

function tickClock() {
  const now = new Date();
  $("clock").textContent = now.toLocaleTimeString([], { hour12: false });
}

function boot() {
  whenUnauthorized((message) => showSignIn(message));
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("mute").addEventListener("click", toggleMute);
  $("wall").addEventListener("click", () => toggleWall());
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  window.addEventListener("hashchange", route);
  fillHelp($("help-dialog"));
  setMuted(muted());
  $("mute").textContent = muted() ? "Sound off" : "Sound on";
  const wall = new URLSearchParams(location.search).get("wall");
  toggleWall(wall === null ? localStorage.getItem(WALL_KEY) === "1" : wall === "1");
  listen({
    "?": () => $("help-dialog").showModal(),
    1: () => { location.hash = "#/queue"; },
    2: () => { location.hash = "#/fleet"; },
    3: () => { location.hash = "#/migration"; },
    m: toggleMute,
    w: () => toggleWall(),
    Escape: () => { location.hash = "#/queue"; },
  }, () => (session && view ? view.keys() : {}));
  setInterval(tickClock, 1000);
  tickClock();
  if (!token()) {
    showSignIn();
    return;
  }
  api("/session").then((me) => { session = me; start(); })
    .catch((error) => showSignIn(error.status === 401 ? "" : error.message));
}

boot();
