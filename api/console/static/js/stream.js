// GET /events read with fetch() and a ReadableStream, so the bearer token stays in a header
// (EventSource cannot send one). Reconnects with Last-Event-ID; a connection silent for three
// keep-alive periods is taken for dead and made again.

import { API, authHeaders } from "./api.js";

const MAX_BACKOFF_MS = 30000;

// Splits the text of an event stream into events (the WHATWG "event stream" format).
export class FrameParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buffer = "";
    this.fields = { data: [] };
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      const { id, event, data } = this.fields;
      if (data.length) this.onFrame({ id, event: event ?? "message", data: data.join("\n") });
      this.fields = { data: [] };
      return;
    }
    if (line.startsWith(":")) {
      this.onFrame({ comment: line.slice(1).trim() });
      return;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.fields.data.push(value);
    else if (name === "id" || name === "event") this.fields[name] = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.onFrame({ retry: Number(value) });
  }
}

export class EventStream {
  // handlers: onHello(data, first), onReset(data), onChange(data), onStatus(state, detail),
  // onUnauthorized()
  constructor(handlers) {
    this.handlers = handlers;
    this.lastEventId = null;
    this.retryMs = 3000;
    this.keepaliveMs = 15000;
    this.attempt = 0;
    this.connections = 0;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop() {
    while (!this.stopped) {
      this.handlers.onStatus(this.connections ? "reconnecting" : "connecting");
      try {
        await this.connect();
        this.attempt = 0;
      } catch (error) {
        if (this.stopped) return;
        if (error.status === 401) {
          this.handlers.onUnauthorized();
          return;
        }
        this.handlers.onStatus("offline", error.message);
      }
      if (this.stopped) return;
      this.attempt += 1;
      const backoff = Math.min(MAX_BACKOFF_MS, this.retryMs * 1.5 ** (this.attempt - 1));
      await new Promise((resolve) => setTimeout(resolve, backoff * (0.75 + Math.random() / 2)));
    }
  }

  async connect() {
    this.controller = new AbortController();
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
    const response = await fetch(`${API}/events`, { headers, signal: this.controller.signal });
    if (!response.ok) {
      const error = new Error(`event stream refused: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new FrameParser((frame) => this.frame(frame));
    let watchdog = this.watch();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(watchdog);
        watchdog = this.watch();
        parser.push(value);
      }
    } finally {
      clearTimeout(watchdog);
    }
    if (!this.stopped) this.handlers.onStatus("reconnecting", "the server closed the stream");
  }

  watch() {
    return setTimeout(() => this.controller?.abort(), this.keepaliveMs * 3);
  }

  frame(frame) {
    if (frame.retry) this.retryMs = frame.retry;
    if (frame.comment !== undefined || frame.data === undefined) return;
    if (frame.id) this.lastEventId = frame.id;
    const data = JSON.parse(frame.data);
    if (frame.event === "hello") {
      if (data.keepalive_s) this.keepaliveMs = data.keepalive_s * 1000;
      this.connections += 1;
      this.handlers.onStatus("live");
      this.handlers.onHello(data, this.connections === 1);
    } else if (frame.event === "reset") {
      this.connections += 1;
      this.handlers.onStatus("live");
      this.handlers.onReset(data);
    } else if (frame.event === "alert" || frame.event === "alarm") {
      this.handlers.onChange(data);
    }
  }
}
