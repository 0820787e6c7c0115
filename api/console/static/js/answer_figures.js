// Answer times against the industry targets, on the queue screen's top bar: today and the
// last 7 days, each target green when met and red when not (GET /stats/answer-times).

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { percent } from "./format.js";

const REFRESH_MS = 30000;

function target(figure) {
  const state = figure.on_target === null ? "none" : figure.on_target ? "met" : "missed";
  return h("span", {
    class: `target ${state}`,
    title: `${figure.met} of ${figure.counted} answered within ${figure.within_s} s ` +
      `(target ${percent(figure.target)})`,
  }, h("span", { class: "limit" }, `≤${figure.within_s}s`), percent(figure.share));
}

function period(name, figures) {
  return h("span", { class: "period" }, h("span", { class: "period-name" }, name),
    figures.targets.map(target));
}

export class AnswerFigures {
  constructor(element) {
    this.element = element;
    this.timer = null;
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async refresh() {
    try {
      const figures = await api("/stats/answer-times");
      const today = figures.days[figures.days.length - 1].figures;
      const targets = figures.total.targets.map((t) => percent(t.target)).join(" / ");
      replace(this.element,
        h("span", { class: "figures-title" }, "Answered", h("br"),
          h("span", { class: "targets-caption" }, `target ${targets}`)),
        period("today", today), period("7 days", figures.total));
    } catch (error) {
      replace(this.element, h("span", { class: "figures-title" }, "Answer times unavailable"));
      console.warn("answer times", error);
    }
  }
}
