// The switchover at a glance: devices per stage, per postcode district, and the homes at risk
// now (mid-migration with no heartbeat since the stage began), from GET /migration/report.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { dateTime, duration, label, since } from "./format.js";
import { RefreshingScreen } from "./screen.js";

const REFRESH_MS = 30000;

function bar(counts, stages, total) {
  return h("div", { class: "stagebar", title: stages.map((s) => `${label(s)} ${counts[s]}`)
    .join(" · ") }, stages.filter((s) => counts[s]).map((s) => h("span", {
    class: `seg stage-${s}`, style: { flexGrow: String(counts[s]) },
  }, counts[s] / total > 0.06 ? String(counts[s]) : "")));
}

export class MigrationView extends RefreshingScreen {
  constructor() {
    super("migration-screen", "Loading the migration report…", REFRESH_MS);
  }

  async fetch() {
    return [await api("/migration/report", { params: { at_risk_limit: 200 } })];
  }

  render(report) {
    const total = Object.values(report.totals).reduce((a, b) => a + b, 0);
    replace(this.root,
      h("h1", {}, "Switchover", h("span", { class: "generated" },
        ` · ${total} devices · ${dateTime(report.generated_at)}`)),
      h("div", { class: "tiles" }, report.stages.map((s) => h("div", {
        class: `tile stage-${s}` }, h("div", { class: "value" }, report.totals[s]),
        h("div", { class: "name" }, label(s)),
        h("div", { class: "extra" }, total ? `${((report.totals[s] / total) * 100).toFixed(1)}%` : "")))),
      h("div", { class: "columns" },
        h("div", { class: "card" }, h("h2", {}, `At risk now · ${report.at_risk_total}`),
          report.at_risk.length ? h("table", { class: "history at-risk" },
            h("thead", {}, h("tr", {}, ["Device", "District", "Stage", "At risk for",
              "Last heartbeat"].map((t) => h("th", {}, t)))),
            h("tbody", {}, report.at_risk.map((d) => h("tr", {},
              h("td", {}, h("a", { href: `#/device/${encodeURIComponent(d.device_id)}` },
                d.device_id)),
              h("td", {}, d.postcode_district ?? "–"), h("td", {}, label(d.migration_stage)),
              h("td", { class: "risk" }, duration(d.at_risk_s)),
              h("td", {}, d.last_heartbeat_at ? `${since(d.last_heartbeat_at)} ago` : "never")))))
            : h("p", { class: "empty ok" }, "No device is silent mid-migration.")),
        h("div", { class: "card" }, h("h2", {}, "By postcode district"),
          h("table", { class: "history districts" },
            h("thead", {}, h("tr", {}, h("th", {}, "District"), h("th", {}, "Devices"),
              h("th", { class: "barcell" }, "Stages"))),
            h("tbody", {}, report.districts.map((d) => h("tr", {},
              h("td", {}, d.postcode_district ?? "(none)"), h("td", {}, d.total),
              h("td", { class: "barcell" }, bar(d.counts, report.stages, d.total)))))),
          h("p", { class: "legend" }, report.stages.map((s) =>
            h("span", { class: `key stage-${s}` }, label(s)))))));
  }
}
