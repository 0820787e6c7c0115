"""The system benchmark's figures (written as JSON) and the table it prints."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from bench.system_api import ApiFigures
from bench.system_storage import StorageFigures
from bench.system_window import Throughput


@dataclass
class Percentiles:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        if not values:
            return cls(0, float("nan"), float("nan"), float("nan"))
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return cls(len(ordered), statistics.median(ordered), p99, ordered[-1])


@dataclass
class Results:
    started_at: str
    commit: str
    devices: int
    rate: float
    broker_inflight: int
    telemetry_connections: int
    heartbeat_writers: int
    one_process: bool
    ceiling: Throughput | None = None
    saturated: Throughput | None = None
    target: Throughput | None = None
    alarm_ack: Percentiles | None = None
    alarm_stream: Percentiles | None = None
    alarms_not_accepted: int = 0
    api: list[ApiFigures] = field(default_factory=list)
    ingest_during_api: Throughput | None = None
    storage: StorageFigures | None = None


def report(results: Results) -> str:
    lines = [
        f"commit {results.commit}, {results.started_at}, {results.devices:,} devices,"
        f" target {results.rate:,.0f} heartbeats/s, {os.cpu_count()} cores,"
        f" broker max_inflight_messages {results.broker_inflight},"
        f" {results.telemetry_connections} telemetry connection(s),"
        f" {results.heartbeat_writers} heartbeat writer(s),"
        f" {'one process' if results.one_process else 'ingest+alerts and api processes'}",
        "",
        "| figure | value |",
        "| --- | ---: |",
    ]

    def row(name: str, value: str) -> None:
        lines.append(f"| {name} | {value} |")

    ceiling, saturated, target = results.ceiling, results.saturated, results.target
    if ceiling:
        row(
            "raw ceiling: delivered to a counting subscriber (/s)",
            f"{ceiling.delivered_per_s:,.0f}",
        )
    if saturated:
        row(
            "ingest at saturation: committed (/s)",
            f"{saturated.delivered_per_s:,.0f} of {saturated.published_per_s:,.0f} published"
            " (the broker drops what its queue for a subscriber cannot hold)",
        )
        if ceiling:
            row(
                "ratio to the raw ceiling",
                f"{saturated.delivered_per_s / ceiling.delivered_per_s:.2f}",
            )
    if target:
        row(
            f"ingest at the target: committed (/s, {target.window_s:.0f} s)",
            f"{target.delivered_per_s:,.0f} of {target.published_per_s:,.0f} published"
            f" (slowest 5 s: {target.slowest_5s:,.0f})",
        )
        row(
            "ratio committed / published at the target",
            f"{target.delivered_per_s / target.published_per_s:.2f}",
        )
    for phase in (saturated, target, results.ingest_during_api):
        if phase and phase.not_written:
            row(
                f"{phase.what}: received, not written (in the window)",
                ", ".join(f"{n:,} {reason}" for reason, n in phase.not_written.items()),
            )
    if results.alarm_ack:
        a = results.alarm_ack
        row(
            "alarm publish to `accepted` ack: p50 / p99 / max (ms)",
            f"{a.p50_ms:.1f} / {a.p99_ms:.1f} / {a.max_ms:.1f} ({a.samples} alarms)",
        )
    if results.alarm_stream:
        s = results.alarm_stream
        row(
            "alarm publish to the event stream: p50 / p99 / max (ms)",
            f"{s.p50_ms:.1f} / {s.p99_ms:.1f} / {s.max_ms:.1f}",
        )
    for api in results.api:
        row(
            f"API {api.name}: p50 / p99 (ms), requests/s",
            f"{api.p50_ms:.1f} / {api.p99_ms:.1f}, {api.requests_per_s:,.0f}"
            + (
                f" ({api.errors} errors, {api.non_2xx} non-2xx)"
                if api.errors or api.non_2xx
                else ""
            ),
        )
    if results.ingest_during_api:
        i = results.ingest_during_api
        row(
            "ingest while the API is under load: committed (/s)",
            f"{i.delivered_per_s:,.0f} of {i.published_per_s:,.0f} published",
        )
    if results.storage:
        st = results.storage
        sample = f"{st.heartbeats:,} rows, {st.chunk_interval} chunks"
        row(f"bytes per heartbeat with its indexes ({sample})", f"{st.bytes_per_heartbeat:.0f}")
        for q in st.queries:
            row(f"{q.what} ({q.rows:,} rows): p50 / max (ms)", f"{q.p50_ms:.1f} / {q.max_ms:.1f}")
    lines.append("")
    lines.append("Cores used (average over each window):")
    for phase in (ceiling, saturated, target, results.ingest_during_api):
        if phase:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in phase.cpu.items())
            lines.append(f"- {phase.what}: {parts}; whole machine {phase.machine_cores:.2f}")
    return "\n".join(lines)
