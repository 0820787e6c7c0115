// The fleet: devices by live status and stage, what waits in the queue, and the devices that
// are overdue now (GET /stats/fleet, GET /devices?overdue_only=true).

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { dateTime, label, since } from "./format.js";
import { RefreshingScreen } from "./screen.js";

const REFRESH_MS = 15000;

function tiles(counts, prefix) {
  return h("div", { class: "tiles" }, Object.entries(counts).map(([name, value]) =>
    h("div", { class: `tile ${prefix}-${name}` }, h("div", { class: "value" }, value),
      h("div", { class: "name" }, label(name)))));
}

export class FleetView extends RefreshingScreen {
  constructor() {
    super("fleet-screen", "Loading the fleet…", REFRESH_MS);
  }

  async fetch() {
    const [stats, overdue] = await Promise.all([
      api("/stats/fleet"),
      api("/devices", { params: { overdue_only: true, limit: 100 } }),
    ]);
    return [stats, overdue.items];
  }

  render(stats, overdue) {
    const { devices, alerts, alarms } = stats;
    replace(this.root,
      h("h1", {}, "Fleet", h("span", { class: "generated" },
        ` · ${devices.total} devices · ${devices.decommissioned} decommissioned · ` +
        dateTime(stats.generated_at))),
      h("h2", {}, "Devices by status"), tiles(devices.by_status, "status"),
      h("h2", {}, "Devices by migration stage"), tiles(devices.by_stage, "stage"),
      h("div", { class: "columns" },
        h("div", { class: "card" }, h("h2", {}, "Queue"), h("dl", { class: "facts" },
          h("dt", {}, "Alarms waiting"), h("dd", {}, `${alarms.waiting} (${alarms.waiting_critical} life-safety)`),
          h("dt", {}, "Oldest waiting since"), h("dd", {}, dateTime(alarms.oldest_waiting_at)),
          h("dt", {}, "Alarms in hand"), h("dd", {}, alarms.in_hand),
          ["critical", "high", "medium", "low"].map((s) => [h("dt", { class: `sev-${s}` },
            `${label(s)} alerts`), h("dd", {}, `${alerts.open[s]} open · ${alerts.acknowledged[s]} acknowledged`)]),
          h("dt", {}, "Grouped under area alerts"), h("dd", {}, alerts.grouped))),
        h("div", { class: "card" }, h("h2", {}, `Overdue now · ${overdue.length}`),
          overdue.length ? h("table", { class: "history" },
            h("thead", {}, h("tr", {}, ["Device", "Status", "Stage", "Last heartbeat"]
              .map((t) => h("th", {}, t)))),
            h("tbody", {}, overdue.map((d) => h("tr", {},
              h("td", {}, h("a", { href: `#/device/${encodeURIComponent(d.device_id)}` },
                d.device_id)),
              h("td", {}, h("span", { class: `status status-${d.status}` }, label(d.status))),
              h("td", {}, label(d.migration_stage)),
              h("td", {}, d.last_heartbeat_at ? `${since(d.last_heartbeat_at)} ago` : "never")))))
            : h("p", { class: "empty ok" }, "Every device is on time."))));
  }
}
