// A screen that shows what one or more requests answer and asks again every `refreshMs`.

import { h, replace } from "./dom.js";

export class RefreshingScreen {
  // name: the section's class; loading: what shows until the first answer.
  constructor(name, loading, refreshMs) {
    this.name = name;
    this.loading = loading;
    this.refreshMs = refreshMs;
  }

  mount(container) {
    this.root = h("section", { class: this.name }, h("p", { class: "loading" }, this.loading));
    replace(container, this.root);
    this.timer = setInterval(() => this.load(), this.refreshMs);
    this.load();
    return () => clearInterval(this.timer);
  }

  async load() {
    try {
      this.render(...(await this.fetch()));
    } catch (error) {
      replace(this.root, h("p", { class: "error" }, error.message));
    }
  }

  keys() {
    return {};
  }
}
