// A small SVG chart of battery (%, left axis) and signal (dBm, right axis) over time, from
// heartbeat buckets (GET /devices/{id}/heartbeats?bucket=). A missing bucket breaks the line:
// a silent device shows as a gap. Time on battery power is shaded.

const NS = "http://www.w3.org/2000/svg";
const W = 960;
const H = 260;
const PAD = { left: 48, right: 56, top: 16, bottom: 28 };
const SIGNAL = { min: -120, max: -40 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function path(points) {
  let d = "";
  let pen = false;
  for (const p of points) {
    if (p === null) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    pen = true;
  }
  return d;
}

// buckets: newest first, as the API answers; since/until: Date; bucketMs: bucket size.
export function batterySignalChart(buckets, { since, until, bucketMs }) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": "Battery and signal over time" });
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const y0 = H - PAD.bottom;
  const y1 = PAD.top;
  const t0 = since.getTime();
  const span = until.getTime() - t0;
  const x = (t) => x0 + ((t - t0) / span) * (x1 - x0);
  const yBattery = (v) => y0 - (v / 100) * (y0 - y1);
  const ySignal = (v) =>
    y0 - ((Math.min(SIGNAL.max, Math.max(SIGNAL.min, v)) - SIGNAL.min) /
      (SIGNAL.max - SIGNAL.min)) * (y0 - y1);

  for (const pct of [0, 25, 50, 75, 100]) {
    svg.append(el("line", { x1: x0, x2: x1, y1: yBattery(pct), y2: yBattery(pct), class: "grid" }));
    svg.append(el("text", { x: x0 - 8, y: yBattery(pct) + 5, class: "axis battery",
      "text-anchor": "end" }, `${pct}%`));
  }
  for (const dbm of [SIGNAL.min, -100, -80, -60, SIGNAL.max]) {
    svg.append(el("text", { x: x1 + 8, y: ySignal(dbm) + 5, class: "axis signal" }, `${dbm}`));
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i += 1) {
    const t = t0 + (span * i) / ticks;
    const d = new Date(t);
    const text = span > 2 * 86400000
      ? `${d.getDate()}/${d.getMonth() + 1} ${String(d.getHours()).padStart(2, "0")}h`
      : `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    svg.append(el("text", { x: x(t), y: H - 8, class: "axis", "text-anchor": "middle" }, text));
  }

  const rows = [...buckets].reverse();
  const battery = [];
  const signal = [];
  let previous = null;
  for (const b of rows) {
    const t = Date.parse(b.bucket);
    const mid = t + bucketMs / 2;
    if (previous !== null && t - previous > bucketMs * 1.5) {
      battery.push(null);
      signal.push(null);
      svg.append(el("rect", { x: x(previous + bucketMs), y: y1,
        width: Math.max(1, x(t) - x(previous + bucketMs)), height: y0 - y1, class: "silent" }));
    }
    if (b.on_battery > 0) {
      svg.append(el("rect", { x: x(t), y: y0 - 6, width: Math.max(2, x(t + bucketMs) - x(t)),
        height: 6, class: "on-battery" }));
    }
    battery.push(b.battery_pct_avg === null ? null : [x(mid), yBattery(b.battery_pct_avg)]);
    signal.push(b.signal_dbm_avg === null ? null : [x(mid), ySignal(b.signal_dbm_avg)]);
    previous = t;
  }
  const end = until.getTime();
  if (previous !== null && end - (previous + bucketMs) > bucketMs * 1.5) {
    svg.append(el("rect", { x: x(previous + bucketMs), y: y1,
      width: Math.max(1, x(end) - x(previous + bucketMs)), height: y0 - y1, class: "silent" }));
  }
  svg.append(el("path", { d: path(battery), class: "line battery" }));
  svg.append(el("path", { d: path(signal), class: "line signal" }));
  for (const [points, name] of [[battery, "battery"], [signal, "signal"]]) {
    for (const p of points.filter(Boolean)) {
      svg.append(el("circle", { cx: p[0], cy: p[1], r: 3.5, class: `dot ${name}` }));
    }
  }
  if (!rows.length) {
    svg.append(el("text", { x: (x0 + x1) / 2, y: (y0 + y1) / 2, class: "nodata",
      "text-anchor": "middle" }, "No heartbeat in this period"));
  }
  return svg;
}
