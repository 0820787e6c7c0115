"""The identity benchmark's table: bench.system's figures for the same phases, then what only
this run has (the fleet, the broker's memory, the checks, the reconnect storm)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bench.system_results import report

if TYPE_CHECKING:
    from bench.system_identity import IdentityResults


def report_identity(results: IdentityResults) -> str:
    lines = [
        "Identity enforced: deploy/mosquitto/production.conf and production.acl, TLS on every"
        f" connection; a fleet of {results.fleet:,} devices, each on its own connection with its"
        f" own certificate (at the target rate one heartbeat every {results.heartbeat_every_s:.2f}"
        f" s each); the ingest on the service listener as telecare.ingest; {results.descriptors:,}"
        " open files per process here.",
        "",
    ]
    for checked in results.checks:
        verdict = "ok" if checked.ok else "NOT AS EXPECTED"
        lines.append(f"- identity check, {checked.what}: {checked.got} ({verdict})")
    lines.append("")
    if results.base is not None:
        lines += [report(results.base), ""]
        lines += ["| identity run | value |", "| --- | ---: |"]
        lines.append(
            f"| fleet connected (TLS handshakes + CONNECT) | {results.fleet_connected_s} s |"
        )
        for when, mb in results.broker_rss_mb.items():
            lines.append(f"| broker RSS, {when} | {mb:,.0f} MB |")
        lines.append("")
    if results.storms:
        lines += [
            "Reconnect storm (broker stop + start, hubs' back-off, `--only ingest,alerts`):",
            "",
            "| devices (heartbeat every / window) | broker restart | all connected again"
            " | each with a heartbeat committed since | with one when all connected / an"
            " interval later | failed attempts | alerts raised (still open) | cores until all"
            " connected | broker RSS |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
        ]
        for s in results.storms:
            cores = ", ".join(f"{k} {v:.2f}" for k, v in s.cpu.items())
            alerts = ", ".join(
                f"{n:,} {kind} ({s.alerts_open.get(kind, 0):,})" for kind, n in s.alerts.items()
            )
            lines.append(
                f"| {s.devices:,} ({s.interval_s} s / {s.window_s} s) | {s.broker_restart_s} s"
                f" | {_seconds(s.all_connected_s)} | {_seconds(s.all_beat_s)}"
                f" | {s.beat_by_all_connected:.0%} / {s.beat_at_end:.0%}"
                f" | {s.failed_attempts:,} | {alerts or 'none'}"
                f" | {cores}; machine {s.machine_cores} | {s.broker_rss_mb:,.0f} MB |"
            )
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return "not reached" if math.isnan(value) else f"{value:.1f} s"
