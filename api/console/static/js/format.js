// How times, durations and names read on the console.

const NAMES = {
  co: "Carbon monoxide",
  pull_cord: "Pull cord",
  bogus_caller: "Bogus caller",
  heartbeat_missed: "Heartbeat missed",
  migration_dropout: "Migration drop-out",
  connection_lost: "Connection lost",
  mains_power_lost: "Mains power lost",
  peripheral_lost: "Peripheral lost",
  peripheral_battery_low: "Peripheral battery low",
  alarm_unhandled: "Alarm unanswered",
  area_outage: "Area outage",
  alert_writer_stalled: "Alert writer stalled",
  certificate_expiring: "Certificate expiring",
  never_seen: "Never seen",
  in_progress: "In progress",
};

// What an alert or alarm is about: its device, its area, or the backend itself (an alert about
// the backend, such as alert_writer_stalled, names neither).
export function subject(item) {
  return item.device_id ?? item.area ?? "backend";
}

export function label(code) {
  if (!code) return "";
  if (NAMES[code]) return NAMES[code];
  const words = code.replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const pad = (n) => String(n).padStart(2, "0");

// 45s, 2m 05s, 1h 03m, 2d 04h: short enough for a queue row, exact enough for a target.
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

export function since(iso, now = Date.now()) {
  return iso ? duration((now - Date.parse(iso)) / 1000) : "–";
}

export function clock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${day} ${clock(iso)}`;
}

export function percent(share, digits = 1) {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(digits)}%`;
}
