// The keyboard: one table for what the keys do and for the help dialog (?).

import { h, replace } from "./dom.js";

export const KEYS = [
  ["j / ↓", "next item in the queue"],
  ["k / ↑", "previous item"],
  ["g / G", "first / last item"],
  ["a", "acknowledge the selected item (with a note)"],
  ["r", "resolve the selected item (with a note)"],
  ["Enter / o", "open the selected item's device"],
  ["/", "search the queue (Esc clears)"],
  ["1 2 3", "queue, fleet, migration"],
  ["Esc", "close a dialog; back to the queue"],
  ["m", "mute or unmute the alarm sound"],
  ["w", "wall-screen mode"],
  ["?", "this help"],
];

export function fillHelp(dialog) {
  replace(dialog.querySelector("tbody"), KEYS.map(([key, what]) =>
    h("tr", {}, h("td", {}, h("kbd", {}, key)), h("td", {}, what))));
}

const typing = (target) =>
  target instanceof HTMLElement &&
  (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

// global: {key: handler} always on; view(): the current screen's {key: handler}.
export function listen(global, view) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys
    if (typing(event.target)) return;
    const handler = view()[event.key] ?? global[event.key];
    if (handler) {
      event.preventDefault();
      handler(event);
    }
  });
}
