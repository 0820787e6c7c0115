"""Rewrite the results table of RELIABILITY.md from the fault runs' JSON (tests/fault_harness.py).

    python -m tests.reliability_table [full|ci]

The table sits between two marker lines in RELIABILITY.md; everything else there is prose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.fault_harness import RESULTS_DIR

DOCUMENT = Path(__file__).resolve().parent.parent / "RELIABILITY.md"
BEGIN = "<!-- results: make reliability writes this table -->"
END = "<!-- end of results -->"
FAULTS = {
    "broker_restart": "Broker restart (SIGTERM, start again; sessions kept)",
    "database_outage": "Database stopped for 30 s (immediate shutdown)",
    "database_hung": "Database hung for 30 s (every process SIGSTOPped)",
    "service_sigkill": "`telecare run` killed with SIGKILL, started again",
    "slow_database": "Slow database (10 ms a heartbeat row, 200 ms an alarm)",
}


def _meanwhile(notes: dict[str, Any]) -> str:
    """What the service held during the fault, from the samples of its /metrics and memory."""
    parts = []
    if "accepted_before_kill" in notes:
        parts.append(
            f"{notes['accepted_before_kill']} alarms acked `accepted` before the kill,"
            " every one in the database then"
        )
    if "slow_s" in notes:
        parts.append(f"slow for {notes['slow_s']} s")
    if "alarms_in_progress_max" in notes:
        parts.append(f"at most {notes['alarms_in_progress_max']:.0f} alarms held in memory")
    if "heartbeats_buffered_max" in notes:
        parts.append(f"{notes['heartbeats_buffered_max']:,.0f} heartbeats buffered at most")
    if "rss_mb_max" in notes:
        parts.append(f"RSS {notes['rss_mb_start']:.0f} -> {notes['rss_mb_max']:.0f} MB")
    return "; ".join(parts)


def _row(result: dict[str, Any]) -> str:
    alarms, beats = result["alarms"], result["heartbeats"]
    dropped = result["heartbeats_dropped_counted"]
    return (
        f"| {FAULTS.get(result['fault'], result['fault'])} | {result['load']} "
        f"| {result['recovery_first_write_s']:.2f} s / {result['recovery_caught_up_s']:.2f} s "
        f"| alarms {alarms['lost']} of {alarms['sent']:,}; heartbeats {beats['lost']:,} of "
        f"{beats['sent']:,} ({dropped:,} counted as dropped) "
        f"| alarms {alarms['duplicated']}; heartbeats {beats['duplicated']} "
        f"| {_meanwhile(result['notes'])} |"
    )


def table(scale: str) -> str:
    results = [
        json.loads(path.read_text()) for path in sorted((RESULTS_DIR / scale).glob("*.json"))
    ]
    order = list(FAULTS)
    results.sort(key=lambda r: order.index(r["fault"]) if r["fault"] in order else len(order))
    runs = sorted({r["at"][:10] for r in results})
    header = [
        f"Measured on {', '.join(runs)} ({scale} size, `make reliability`):",
        "",
        "| fault | load held | recovery: first write / backlog caught up | lost | duplicated"
        " | meanwhile |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join(header + [_row(r) for r in results if r["fault"] in FAULTS])


def main() -> int:
    scale = sys.argv[1] if len(sys.argv) > 1 else "full"
    text = DOCUMENT.read_text()
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    DOCUMENT.write_text(f"{before}{BEGIN}\n{table(scale)}\n{END}{after}")
    print(table(scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
