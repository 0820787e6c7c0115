// The order of the operators' queue. Waiting items before those in hand; within each, by rank:
//   0 life-safety alarms (fall, smoke, heat, CO, gas, pendant, pull cord, epilepsy, panic:
//     the server's severity "critical"), 1 other alarms asking for help, 2 critical alerts
//     (migration drop-out, area outage, alarm unanswered), 3 high alerts, 4 medium alerts,
//     5 technical alarms and low alerts;
// then the longest waiting first (a call queue is served in order), then by id.

const ALARM_RANK = { critical: 0, high: 1, medium: 4, low: 5 };
const ALERT_RANK = { critical: 2, high: 3, medium: 4, low: 5 };

export function rank(entry) {
  const table = entry.kind === "alarm" ? ALARM_RANK : ALERT_RANK;
  return table[entry.item.severity] ?? 5;
}

export function since(entry) {
  return entry.kind === "alarm" ? entry.item.received_at : entry.item.raised_at;
}

export function waiting(entry) {
  return entry.item.state === "open";
}

export function compare(a, b) {
  return (
    Number(waiting(b)) - Number(waiting(a)) ||
    rank(a) - rank(b) ||
    Date.parse(since(a)) - Date.parse(since(b)) ||
    a.item.id - b.item.id
  );
}

export function ordered(entries) {
  return [...entries].sort(compare);
}

// An alarm a person raised (not a technical event): it rings.
export function asksForHelp(entry) {
  return entry.kind === "alarm" && entry.item.severity !== "low";
}
