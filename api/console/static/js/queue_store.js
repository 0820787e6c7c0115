// What the queue holds: unresolved alarms and top-level alerts, kept current by the event
// stream. Lists are loaded once the stream is open; events that arrive meanwhile are applied
// after the lists, in order, so the newest state always wins.

import { all, api } from "./api.js";
import { asksForHelp, ordered, waiting } from "./priority.js";

const RESOLVED_SHOWN_MS = 60000;

const key = (kind, id) => `${kind}:${id}`;

export class QueueStore {
  constructor() {
    this.entries = new Map(); // key -> {kind, item}
    this.unanswered = new Map(); // alarm id -> its alarm_unhandled alert
    this.resolved = []; // {kind, item, at}: resolved in the last minute, newest first
    this.buffer = null; // events held while the lists load
    this.listeners = new Set();
    this.onArrival = () => {}; // (entry): a new row, for the audible and visible cue
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // Listeners get the event that changed the queue (null for a reload).
  changed(event = null) {
    for (const listener of this.listeners) listener(event);
  }

  async load() {
    this.buffer = [];
    const lists = await Promise.all([
      all("/alarms", { state: "open" }),
      all("/alarms", { state: "acknowledged" }),
      all("/alerts", { state: "open", top_level: true }),
      all("/alerts", { state: "acknowledged", top_level: true }),
    ]);
    this.entries.clear();
    this.unanswered.clear();
    lists.slice(0, 2).flat().forEach((item) => this.put("alarm", item));
    lists.slice(2).flat().forEach((item) => this.put("alert", item));
    const held = this.buffer;
    this.buffer = null;
    held.forEach((event) => this.apply(event, { quiet: true }));
    this.changed();
  }

  // One event of GET /events: {event_id, kind, action, state, item}.
  apply(event, { quiet = false } = {}) {
    if (this.buffer) {
      this.buffer.push(event);
      return;
    }
    const { kind, item, action } = event;
    const k = key(kind, item.id);
    const known = this.entries.has(k);
    this.put(kind, item);
    if (item.state === "resolved" && known) {
      this.resolved.unshift({ kind, item, at: Date.now() });
      this.resolved.length = Math.min(this.resolved.length, 10);
    }
    if (kind === "alert" && item.group_id !== null) this.refreshArea(item.group_id);
    if (!quiet && action === "created" && this.entries.has(k)) {
      this.onArrival(this.entries.get(k));
    }
    this.changed(event);
  }

  put(kind, item) {
    const k = key(kind, item.id);
    if (kind === "alert" && item.type === "alarm_unhandled" && item.details?.alarm_id) {
      if (item.state === "resolved") this.unanswered.delete(item.details.alarm_id);
      else this.unanswered.set(item.details.alarm_id, item);
    }
    const shown = item.state !== "resolved" && !(kind === "alert" && item.group_id !== null);
    if (shown) this.entries.set(k, { kind, item });
    else this.entries.delete(k);
  }

  // A member was grouped under an area alert: its `grouped` count changed.
  async refreshArea(areaId) {
    try {
      this.put("alert", await api(`/alerts/${areaId}`));
      this.changed();
    } catch (error) {
      console.warn("area alert not refreshed", areaId, error);
    }
  }

  get(k) {
    return this.entries.get(k);
  }

  // Alarm_unhandled alerts whose alarm is on the queue show as a flag on that alarm's row.
  rows() {
    return ordered(
      [...this.entries.values()].filter(
        (e) =>
          !(
            e.kind === "alert" &&
            e.item.type === "alarm_unhandled" &&
            this.entries.has(key("alarm", e.item.details?.alarm_id))
          ),
      ),
    );
  }

  recentlyResolved(now = Date.now()) {
    this.resolved = this.resolved.filter((r) => now - r.at < RESOLVED_SHOWN_MS);
    return this.resolved;
  }

  counts() {
    const rows = this.rows();
    const open = rows.filter(waiting);
    const alarms = open.filter(asksForHelp);
    const alerts = (severity) =>
      open.filter((e) => e.kind === "alert" && e.item.severity === severity).length;
    const critical = alerts("critical");
    const high = alerts("high");
    return {
      alarmsWaiting: alarms.length,
      lifeSafety: alarms.filter((e) => e.item.severity === "critical").length,
      critical,
      high,
      other: open.length - alarms.length - critical - high,
      inHand: rows.length - open.length,
      oldest: alarms.map((e) => e.item.received_at).sort()[0] ?? null,
    };
  }
}
