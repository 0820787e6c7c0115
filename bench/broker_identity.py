"""Figures for the device identity design on the installed Mosquitto, printed, never asserted.

    .venv/bin/python -m bench.broker_identity [--quick] [--reps N] [--only crl,passwd,memory]

1. CRL reload (bench/broker_identity_crl.py): the broker's stall on SIGHUP with N devices
   connected and CRLs of growing size, dropped clients, how soon a revoked certificate is
   refused, the CRL's generation time in Python, and the broker's CPU per handshake at each
   CRL size (and for devices of a second issuing CA next to the large CRL).
2. Password file (bench/broker_identity_passwd.py): the alternative for devices without
   client certificates, up to the whole fleet in one file.
3. Memory and handshakes (bench/broker_identity_memory.py): broker memory per idle TLS
   connection against plaintext, and the broker's CPU per TLS handshake.

Each measurement is repeated (the machine is shared), and the tables show the range. Private
brokers on free ports in a temporary directory; the raw rows go to build/bench/. The
descriptor limit is raised to the hard limit, which caps how many connections one broker
(one process) can hold here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.broker_identity_broker import mosquitto_version, raise_open_files_limit
from bench.broker_identity_crl import Row, crl_generation, crl_session, handshake_session
from bench.broker_identity_memory import memory_session
from bench.broker_identity_passwd import PasswordFleet, password_session
from bench.broker_identity_pki import Pki

OUT = Path(__file__).resolve().parent.parent / "build" / "bench"
PLANS: dict[str, dict[str, Any]] = {
    "full": {
        "reps": 2,
        "crl_clients": [2_000, 10_000],
        "crl_sizes": [0, 10_000, 100_000, 1_000_000],
        "handshakes": 300,
        "pw_sizes": [10_000, 100_000, 1_800_000],
        "pw_connected": 5_000,
        "memory_steps": [5_000, 19_500],  # 20,000 descriptors is this VM's hard limit
        "memory_reps": 2,  # --reps does not change these: 20,000 handshakes take minutes
    },
    "quick": {
        "reps": 1,
        "crl_clients": [500, 2_000],
        "crl_sizes": [0, 10_000, 100_000],
        "handshakes": 150,
        "pw_sizes": [10_000, 100_000],
        "pw_connected": 1_000,
        "memory_steps": [1_000, 4_000],
        "memory_reps": 1,
    },
}


def _spread(values: list[Any], digits: int) -> str:
    nums = [v for v in values if isinstance(v, int | float) and not math.isnan(v)]
    if not nums:
        return "-" if not values else "/".join(sorted({str(v) for v in values}))
    low, high = min(nums), max(nums)
    fmt = f"{{:,.{digits}f}}"
    return (
        fmt.format(low)
        if fmt.format(low) == fmt.format(high)
        else f"{fmt.format(low)}-{fmt.format(high)}"
    )


def _since(started: float) -> str:
    return f"done at {time.perf_counter() - started:.0f} s"


def table(rows: list[Row], keys: list[str], columns: list[tuple[str, str, int]]) -> str:
    """A markdown table: one line per distinct `keys`, each column as the range over reps."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    lines = ["| " + " | ".join(keys + [c[0] for c in columns]) + " |"]
    lines.append("|" + " --- |" * (len(keys) + len(columns)))
    for key, group in groups.items():
        cells = [f"{k:,}" if isinstance(k, int) else str(k) for k in key]
        cells += [
            _spread([r.get(field) for r in group if field in r], d) for _, field, d in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def run_crl(tmp: Path, pki: Pki, plan: dict[str, Any], results: dict[str, Any]) -> None:
    started = time.perf_counter()
    sizes, reps = plan["crl_sizes"], plan["reps"]
    generation = await crl_generation(pki, tmp, sizes, reps)
    results["crl_generation"] = generation
    print(
        table(generation, ["revoked"], [("CRL MiB", "mib", 1), ("generate+write s", "seconds", 3)])
    )
    certs = pki.clients("dev", max(plan["crl_clients"]))
    other = Pki(tmp / "pki-2", "bench-device-ca-2")
    rows: list[Row] = []
    shakes: list[Row] = []
    for rep in range(reps):
        for n in plan["crl_clients"]:
            session = await crl_session(tmp / f"crl-{n}-{rep}", pki, certs[:n], sizes)
            rows += [row | {"clients": n, "rep": rep} for row in session]
            print(f"  crl rep {rep} clients {n}: {_since(started)}", flush=True)
        session = await handshake_session(
            tmp / f"handshakes-{rep}", pki, certs[: plan["handshakes"]], sizes, other
        )
        shakes += [row | {"rep": rep} for row in session]
        print(f"  handshakes rep {rep}: {_since(started)}", flush=True)
    results["crl_reload"] = rows
    results["crl_handshakes"] = shakes
    reloads = [r for r in rows if r["step"] == "reload"]
    print(table(reloads, ["clients", "crl_revoked"], [
        ("CRL MiB", "crl_mib", 1), ("stall s", "stall_s", 3),
        ("quiet worst s", "baseline_worst_s", 3),
        ("revoked refused after s", "visible_after_s", 3), ("dropped", "dropped", 0),
        ("reload CPU s", "reload_cpu_s", 2), ("RSS before MiB", "rss_before_mib", 0),
        ("RSS after MiB", "rss_after_mib", 0), ("victim refused", "victim_refused", 0),
    ]))  # fmt: skip
    connects = [r for r in rows if r["step"] == "connect"]
    print(table(connects, ["connected"], [
        ("connections/s", "connections_per_s", 0),
        ("broker CPU ms/handshake", "broker_cpu_ms_per_connection", 2),
        ("refused", "refused", 0), ("RSS MiB", "rss_mib", 0),
    ]))  # fmt: skip
    print(table(shakes, ["crl_revoked", "issuer"], [
        ("CRL MiB", "crl_mib", 1), ("connections/s", "connections_per_s", 0),
        ("broker CPU ms/handshake", "broker_cpu_ms_per_connection", 2), ("refused", "refused", 0),
    ]))  # fmt: skip


async def run_passwd(tmp: Path, plan: dict[str, Any], results: dict[str, Any]) -> None:
    started = time.perf_counter()
    fleet = PasswordFleet(max(plan["pw_sizes"]), plan["pw_connected"])
    rows: list[Row] = []
    for rep in range(plan["reps"]):
        for size in plan["pw_sizes"]:
            row = await password_session(tmp / f"pw-{size}-{rep}", fleet, size)
            rows.append(row | {"rep": rep})
            print(f"  password rep {rep} entries {size}: {_since(started)}", flush=True)
    results["password_file"] = rows
    m = plan["pw_connected"]
    print(table(rows, ["entries"], [
        ("file MiB", "file_mib", 0), ("render s", "render_s", 2), ("start s", "start_s", 2),
        ("RSS MiB", "rss_mib", 0), ("stall s, 0 connected", "stall_s_0", 2),
        (f"stall s, {m:,} connected", f"stall_s_{m}", 2),
        ("newcomer accepted after s", f"visible_after_s_{m}", 2),
        ("connect/s", "connections_per_s", 0),
        ("broker CPU ms/connect", "broker_cpu_ms_per_connection", 2),
        ("dropped", "dropped", 0), ("mosquitto_passwd line ok", "tool_line_accepted", 0),
    ]))  # fmt: skip


async def run_memory(tmp: Path, pki: Pki, plan: dict[str, Any], results: dict[str, Any]) -> None:
    started = time.perf_counter()
    steps = plan["memory_steps"]
    certs = pki.clients("mem", max(steps))
    rows: list[Row] = []
    for rep in range(plan["memory_reps"]):
        for kind in ("tls", "plaintext"):
            folder = tmp / f"mem-{kind}-{rep}"
            session = memory_session(folder, pki, certs if kind == "tls" else None, steps)
            rows += [row | {"rep": rep} for row in session]
            print(f"  memory rep {rep} {kind}: {_since(started)}", flush=True)
    results["memory"] = rows
    print(table(rows, ["kind", "connections"], [
        ("RSS MiB", "rss_mib", 0), ("KiB/connection", "kib_per_connection", 1),
        ("connections/s", "connections_per_s", 0),
        ("broker CPU ms/connection", "broker_cpu_ms_per_connection", 2), ("refused", "refused", 0),
    ]))  # fmt: skip


async def main(plan_name: str, reps: int | None, only: set[str]) -> None:
    plan = PLANS[plan_name] | ({"reps": reps} if reps else {})
    limit = raise_open_files_limit()
    results: dict[str, Any] = {
        "plan": plan_name,
        "parameters": plan,
        "mosquitto": mosquitto_version(),
        "open_files_limit": limit,
        "machine": platform.platform(),
    }
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="telecare-bench-identity-"))
    try:
        pki = Pki(tmp / "pki")
        if "crl" in only:
            print("\n## 1. CRL reload", flush=True)
            await run_crl(tmp, pki, plan, results)
        if "passwd" in only:
            print("\n## 2. Password file", flush=True)
            await run_passwd(tmp, plan, results)
        if "memory" in only:
            print("\n## 3. Memory and handshakes", flush=True)
            await run_memory(tmp, pki, plan, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"broker_identity{'_quick' if plan_name == 'quick' else ''}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{results['seconds']:.0f} s; rows in {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--only", default="crl,passwd,memory", help="experiments to run")
    args = parser.parse_args()
    asyncio.run(main("quick" if args.quick else "full", args.reps, set(args.only.split(","))))
