// A device's page: live status, migration stage, battery and signal over time, and its alert
// and alarm history. Changes to its alerts and alarms arrive through the event stream.

import { all, api } from "./api.js";
import { batterySignalChart } from "./chart.js";
import { h, replace } from "./dom.js";
import { clock, dateTime, label, since } from "./format.js";

const RANGES = [
  { name: "6 h", ms: 6 * 3600e3, bucket: "5m", bucketMs: 300e3 },
  { name: "24 h", ms: 24 * 3600e3, bucket: "15m", bucketMs: 900e3 },
  { name: "7 days", ms: 7 * 86400e3, bucket: "2h", bucketMs: 7200e3 },
];
const STAGES = ["analogue", "scheduled", "in_progress", "verifying", "complete"];
const REFRESH_MS = 15000;

function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value ?? "–")]));
}

function historyTable(items, kind) {
  if (!items.length) return h("p", { class: "empty" }, `No ${kind}s.`);
  return h("table", { class: "history" },
    h("thead", {}, h("tr", {}, ["When", kind === "alarm" ? "Event" : "Type", "Severity", "State",
      "By", "Notes"].map((t) => h("th", {}, t)))),
    h("tbody", {}, items.map((item) => h("tr", { class: `sev-${item.severity}` },
      h("td", {}, dateTime(item.received_at ?? item.raised_at)),
      h("td", {}, label(item.event ?? item.type)),
      h("td", { class: "sev" }, item.severity),
      h("td", {}, label(item.state)),
      h("td", {}, item.resolved_by ?? item.acknowledged_by ?? ""),
      h("td", {}, item.history.filter((e) => e.note).map((e) => `${e.actor}: ${e.note}`)
        .join(" · "))))));
}

// How the device proves who it is: its certificate in use, its expiry, what was revoked.
function identityCard(credentials) {
  const certificates = credentials.certificates;
  const current = certificates.find((c) => c.status === "active") ?? certificates[0];
  const days = current && Math.floor((Date.parse(current.not_after) - Date.now()) / 86400e3);
  const revoked = certificates.filter((c) => c.status === "revoked").length;
  return h("div", { class: "card" }, h("h2", {}, "Identity"), facts([
    ["Credentials", credentials.broker_credentials === "certificates" ? "Certificate"
      : "MQTT password"],
    ["Certificate", current ? `${current.serial} (${label(current.status)})` : null],
    ["Expires", current ? `${dateTime(current.not_after)}${current.status === "active"
      ? ` (in ${days} days)` : ""}` : null],
    ["Revoked", revoked ? `${revoked} earlier certificate${revoked > 1 ? "s" : ""}` : null],
    ["Password set", dateTime(credentials.mqtt_password_set_at)],
  ]));
}

export class DeviceView {
  constructor(deviceId, store, session) {
    this.deviceId = deviceId;
    this.store = store;
    // Credentials are for technicians and admins; an operator's page goes without the card.
    this.seesCredentials = session?.role === "technician" || session?.role === "admin";
    this.range = RANGES[1];
  }

  mount(container) {
    this.root = h("section", { class: "device-screen" },
      h("p", { class: "loading" }, `Loading ${this.deviceId}…`));
    replace(container, this.root);
    this.unsubscribe = this.store.subscribe((event) => {
      if (event?.item?.device_id === this.deviceId) this.historySoon();
    });
    this.timer = setInterval(() => this.load(), REFRESH_MS);
    this.load();
    return () => { this.unsubscribe(); clearInterval(this.timer); clearTimeout(this.pending); };
  }

  historySoon() {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.load(), 500);
  }

  async load() {
    const id = encodeURIComponent(this.deviceId);
    const until = new Date();
    const from = new Date(until.getTime() - this.range.ms);
    let device;
    try {
      device = await api(`/devices/${id}`);
    } catch (error) {
      replace(this.root, h("p", { class: "error" },
        error.status === 404 ? `No device ${this.deviceId}.` : error.message));
      return;
    }
    const [buckets, alerts, alarms, migration, credentials] = await Promise.all([
      all(`/devices/${id}/heartbeats`, { since: from.toISOString(), until: until.toISOString(),
        bucket: this.range.bucket }),
      api("/alerts", { params: { device_id: this.deviceId, limit: 50 } }),
      api("/alarms", { params: { device_id: this.deviceId, limit: 50 } }),
      api(`/devices/${id}/migration`),
      this.seesCredentials ? api(`/devices/${id}/credentials`).catch(() => null) : null,
    ]);
    this.render(device, { buckets, since: from, until }, alerts.items, alarms.items, migration,
      credentials);
  }

  render(device, chart, alerts, alarms, migration, credentials) {
    const stage = device.migration_stage;
    replace(this.root,
      h("div", { class: "device-head" },
        h("h1", {}, device.device_id),
        h("span", { class: `status status-${device.status}` }, label(device.status)),
        h("a", { href: "#/queue", class: "back" }, "← Queue (Esc)")),
      h("div", { class: "cards" },
        h("div", { class: "card" }, h("h2", {}, "Now"), facts([
          ["Last heartbeat", device.last_heartbeat_at
            ? `${since(device.last_heartbeat_at)} ago (${clock(device.last_heartbeat_at)})` : null],
          ["Overdue at", dateTime(device.heartbeat_deadline_at)],
          ["Power", label(device.power)],
          ["Battery", device.battery_pct === null ? null : `${device.battery_pct}%`],
          ["Signal", device.signal_dbm === null ? null : `${device.signal_dbm} dBm`],
          ["Network", device.network], ["Firmware", device.firmware],
          ["Heartbeat every", `${device.heartbeat_interval_s} s`],
        ])),
        h("div", { class: "card" }, h("h2", {}, "Home"), facts([
          ["Resident", device.resident_ref], ["Address", device.address],
          ["Postcode", device.postcode], ["Model", device.model], ["Serial", device.serial],
          ["Peripherals", (device.peripherals ?? []).map((p) =>
            `${p.kind} ${p.id}${p.battery_pct === null ? "" : ` ${p.battery_pct}%`}`)
            .join(", ") || null],
        ])),
        h("div", { class: "card" }, h("h2", {}, "Migration"),
          h("ol", { class: `stages ${stage === "failed" ? "failed" : ""}` }, STAGES.map((s) =>
            h("li", { class: [s === stage && "current",
              STAGES.indexOf(s) < STAGES.indexOf(stage) && "done"].filter(Boolean).join(" ") },
            label(s)))),
          facts([["Stage", label(stage)], ["Since", dateTime(device.stage_changed_at)],
            ["Next", migration.next_stages.map(label).join(", ")],
            ["Missing to complete", migration.evidence?.missing?.join("; ")]])),
        credentials && identityCard(credentials)),
      h("div", { class: "card wide" },
        h("div", { class: "chart-head" }, h("h2", {}, "Battery and signal"),
          h("span", { class: "legend" }, h("span", { class: "key battery" }, "battery %"),
            h("span", { class: "key signal" }, "signal dBm"),
            h("span", { class: "key silent" }, "silent"),
            h("span", { class: "key on-battery" }, "on battery")),
          h("span", { class: "ranges" }, RANGES.map((r) => h("button", {
            class: r === this.range ? "active" : "", onclick: () => { this.range = r; this.load(); },
          }, r.name)))),
        batterySignalChart(chart.buckets, { ...chart, bucketMs: this.range.bucketMs })),
      h("div", { class: "card wide" }, h("h2", {}, "Alerts"), historyTable(alerts, "alert")),
      h("div", { class: "card wide" }, h("h2", {}, "Alarms"), historyTable(alarms, "alarm")));
  }

  keys() {
    return { Escape: () => { location.hash = "#/queue"; } };
  }
}
