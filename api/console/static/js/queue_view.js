// The queue screen: what waits, in priority order, what is in hand, what just resolved.
// j/k or arrows move, a acknowledges, r resolves (each with a note), Enter opens the device.

import { openAction } from "./action_dialog.js";
import { api } from "./api.js";
import { announce, h, replace } from "./dom.js";
import { clock, dateTime, duration, label, since as age, subject } from "./format.js";
import { asksForHelp, since, waiting } from "./priority.js";

function summary(item, kind) {
  const d = item.details ?? {};
  if (kind === "alarm") {
    return [item.peripheral && `peripheral ${item.peripheral}`, item.detail].filter(Boolean);
  }
  switch (item.type) {
    case "heartbeat_missed":
    case "migration_dropout":
    case "connection_lost":
      return d.silent_since ? [`silent since ${clock(d.silent_since)}`] : [];
    case "battery_low":
    case "mains_power_lost":
      return d.battery_pct !== undefined ? [`battery ${d.battery_pct ?? "?"}%`] : [];
    case "peripheral_lost":
    case "peripheral_battery_low":
      return [`peripherals ${(d.peripherals ?? []).join(", ")}`];
    case "flapping":
      return [`${d.drops} drops in ${duration(d.window_s)}, now ${d.currently}`];
    case "area_outage":
      return [
        `${d.members} of ${d.devices_in_area} devices ${d.cause === "mains" ? "on battery" : "silent"}`,
        `${item.grouped} alerts grouped`,
      ];
    case "alarm_unhandled":
      return [`alarm ${d.alarm_id} (${label(d.event)}) unanswered`];
    case "certificate_expiring":
      return [`certificate ${d.serial} ${d.expired ? "expired" : "expires"} ${dateTime(d.not_after)}`];
    case "alert_writer_stalled":
      return [
        d.stalled_s ? `no alert written for ${duration(d.stalled_s)}` : "",
        d.refused ? `${d.refused} refused by the database` : "",
        d.dropped ? `${d.dropped} dropped (queue full)` : "",
      ].filter(Boolean);
    default:
      return [];
  }
}

function where(item) {
  if (item.device_id) {
    return h("a", { href: `#/device/${encodeURIComponent(item.device_id)}`, tabindex: -1 },
      item.device_id);
  }
  return subject(item);
}

function stateText(item) {
  if (item.state === "open") return "Waiting";
  const verb = item.state === "resolved" ? "Resolved" : "Acknowledged";
  const by = item.state === "resolved" ? item.resolved_by : item.acknowledged_by;
  const at = item.state === "resolved" ? item.resolved_at : item.acknowledged_at;
  return `${verb} by ${by} ${clock(at)}`;
}

export class QueueView {
  constructor(store, session, { onFiguresStale }) {
    this.store = store;
    this.session = session;
    this.onFiguresStale = onFiguresStale;
    this.selected = null;
    this.filter = "";
    this.fresh = new Map(); // key -> time it arrived, for the "new" highlight
  }

  mount(container) {
    this.search = h("input", {
      id: "search", type: "search", placeholder: "Search device, type or area ( / )",
      "aria-label": "Search the queue", autocomplete: "off",
      oninput: () => { this.filter = this.search.value.trim().toLowerCase(); this.render(); },
      onkeydown: (e) => this.searchKey(e),
    });
    this.tiles = h("div", { class: "tiles", role: "status" });
    this.list = h("div", { class: "queue", role: "listbox", "aria-label": "Queue",
      tabindex: 0 });
    replace(container, h("section", { class: "queue-screen" }, this.tiles,
      h("div", { class: "searchbar" }, this.search,
        h("span", { class: "hint" }, "j/k move · a acknowledge · r resolve · ↵ device · ? keys")),
      this.list));
    this.unsubscribe = this.store.subscribe(() => this.render());
    this.ticker = setInterval(() => this.tick(), 1000);
    this.render();
    this.list.focus();
    return () => { this.unsubscribe(); clearInterval(this.ticker); };
  }

  arrived(entry) {
    this.fresh.set(`${entry.kind}:${entry.item.id}`, Date.now());
  }

  visible() {
    const rows = this.store.rows();
    if (!this.filter) return rows;
    return rows.filter(({ kind, item }) =>
      [kind, item.device_id, item.area, item.type, item.event, label(item.type ?? item.event),
        item.state].filter(Boolean).join(" ").toLowerCase().includes(this.filter));
  }

  render() {
    const rows = this.visible();
    const keys = rows.map((e) => `${e.kind}:${e.item.id}`);
    if (!keys.includes(this.selected)) this.selected = keys[0] ?? null;
    const open = rows.filter(waiting);
    const inHand = rows.filter((e) => !waiting(e));
    const resolved = this.store.recentlyResolved();
    replace(this.list,
      h("h2", { class: "section" }, `Waiting · ${open.length}`),
      open.length ? open.map((e) => this.row(e)) : h("p", { class: "empty" },
        this.filter ? "Nothing waiting matches the search." : "Nothing waiting. All clear."),
      h("h2", { class: "section" }, `In hand · ${inHand.length}`),
      inHand.map((e) => this.row(e)),
      resolved.length ? [h("h2", { class: "section" }, "Resolved in the last minute"),
        resolved.map((r) => this.row(r, { done: true }))] : []);
    this.renderTiles();
    this.list.setAttribute("aria-activedescendant", this.selected ? `row-${this.selected}` : "");
    this.list.querySelector(".row.selected")?.scrollIntoView({ block: "nearest" });
  }

  row(entry, { done = false } = {}) {
    const { kind, item } = entry;
    const k = `${kind}:${item.id}`;
    const unanswered = kind === "alarm" && this.store.unanswered.has(item.id);
    const isFresh = Date.now() - (this.fresh.get(k) ?? 0) < 15000;
    const classes = ["row", `sev-${item.severity}`, `kind-${kind}`, `state-${item.state}`,
      k === this.selected && !done && "selected", isFresh && "new", unanswered && "overdue",
      asksForHelp(entry) && "help"].filter(Boolean).join(" ");
    return h("div", {
      class: classes, role: "option", id: done ? null : `row-${k}`,
      "aria-selected": String(k === this.selected && !done), dataset: { key: k },
      onclick: done ? null : () => { this.selected = k; this.render(); },
      ondblclick: done ? null : () => this.open(),
    },
    h("div", { class: "what" },
      h("span", { class: "kind" }, kind === "alarm" ? "ALARM" : "ALERT"),
      h("span", { class: "name" }, label(item.event ?? item.type)),
      h("span", { class: "sev" }, item.severity),
      unanswered && h("span", { class: "flag" }, "UNANSWERED"),
      isFresh && item.state === "open" && h("span", { class: "flag fresh" }, "NEW")),
    h("div", { class: "where" }, where(item),
      summary(item, kind).map((part) => h("span", { class: "detail" }, part))),
    h("div", { class: "age", dataset: { since: since(entry) }, title: "waiting for" },
      age(since(entry))),
    h("div", { class: "state" }, stateText(item)));
  }

  renderTiles() {
    const c = this.store.counts();
    const tile = (name, value, extra, cls) =>
      h("div", { class: `tile ${cls ?? ""}` }, h("div", { class: "value" }, value),
        h("div", { class: "name" }, name), extra && h("div", { class: "extra" }, extra));
    replace(this.tiles,
      tile("Alarms waiting", c.alarmsWaiting, c.lifeSafety ? `${c.lifeSafety} life-safety` : null,
        c.alarmsWaiting ? "alarm" : "ok"),
      tile("Longest wait", c.oldest ? age(c.oldest) : "–", null, c.oldest ? "alarm" : ""),
      tile("Critical alerts", c.critical, null, c.critical ? "critical" : ""),
      tile("High alerts", c.high, null, c.high ? "high" : ""),
      tile("Other", c.other),
      tile("In hand", c.inHand));
  }

  tick() {
    const now = Date.now();
    for (const el of this.list.querySelectorAll(".age[data-since]")) {
      el.textContent = age(el.dataset.since, now);
    }
    const oldest = this.store.counts().oldest;
    const longest = this.tiles.querySelectorAll(".tile .value")[1];
    if (longest && oldest) longest.textContent = age(oldest, now);
  }

  move(step) {
    const keys = this.visible().map((e) => `${e.kind}:${e.item.id}`);
    if (!keys.length) return;
    const at = keys.indexOf(this.selected);
    const next = step === Infinity ? keys.length - 1 : step === -Infinity ? 0
      : Math.min(keys.length - 1, Math.max(0, at + step));
    this.selected = keys[next];
    this.render();
  }

  current() {
    return this.selected ? this.store.get(this.selected) : null;
  }

  async act(action) {
    const entry = this.current();
    if (!entry) return;
    if (!this.session.may_act) {
      announce(`Your role (${this.session.role}) may not ${action} alerts or alarms.`);
      return;
    }
    const { kind, item } = entry;
    if (action === "acknowledge" && item.state !== "open") {
      announce(`Already acknowledged by ${item.acknowledged_by}.`);
      return;
    }
    const path = `/${kind}s/${item.id}/${action === "acknowledge" ? "ack" : "resolve"}`;
    const verb = action === "acknowledge" ? "Acknowledge" : "Resolve";
    const updated = await openAction({
      title: `${verb} ${kind} ${item.id}`,
      summary: `${label(item.event ?? item.type)} · ${subject(item)} · ` +
        `waiting ${age(since(entry))}`,
      verb,
      submit: (note) => api(path, { method: "POST", body: note ? { note } : {} }),
    });
    if (updated) {
      this.store.apply({ kind, item: updated, action: "updated", state: updated.state });
      announce(`${label(item.event ?? item.type)} ${updated.state}.`);
      this.onFiguresStale();
    }
    this.list.focus();
  }

  open() {
    const entry = this.current();
    if (entry?.item.device_id) location.hash = `#/device/${encodeURIComponent(entry.item.device_id)}`;
  }

  searchKey(event) {
    if (event.key === "Escape") {
      this.search.value = "";
      this.filter = "";
      this.render();
      this.list.focus();
    } else if (event.key === "Enter" || event.key === "ArrowDown") {
      event.preventDefault();
      this.list.focus();
    }
  }

  keys() {
    return {
      j: () => this.move(1), ArrowDown: () => this.move(1),
      k: () => this.move(-1), ArrowUp: () => this.move(-1),
      g: () => this.move(-Infinity), Home: () => this.move(-Infinity),
      G: () => this.move(Infinity), End: () => this.move(Infinity),
      a: () => this.act("acknowledge"), r: () => this.act("resolve"),
      Enter: () => this.open(), o: () => this.open(),
      "/": () => this.search.focus(),
    };
  }
}
