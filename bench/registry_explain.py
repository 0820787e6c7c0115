"""Where a registration's time goes in the database, at the fleet's current size.

The statements of the insert path (devices/registry.py `_INSERT`, the audit insert of
db/audit.py, the certificate insert of devices/certificates.py, the read-back of the new
device) and the revocation publisher's queries (devices/broker_files.py), each under
EXPLAIN (ANALYZE, BUFFERS) in a transaction that is rolled back, for one device and for a
1,000-row import. A time or a buffer count that grows with the fleet names the statement and
the plan node to fix.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from telecare.devices.broker_files import _CRL_MARK, _LISTED
from telecare.devices.registry import _INSERT, _ONE, NewDevice

_AUDIT = (
    "INSERT INTO audit_log (actor, actor_role, token_id, action, target_type, target_id,"
    " details) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_CERTIFICATES = (
    "INSERT INTO device_certificates (serial, device_id, fingerprint_sha256, not_before,"
    " not_after, key_source, issued_by)"
    " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[],"
    " %s::timestamptz[], %s::text[], %s::text[])"
)


@dataclass(frozen=True)
class Explained:
    statement: str
    ms: float  # execution time, median of the repetitions
    hit: int  # shared buffers found in cache (top node, triggers not included)
    read: int  # shared buffers read from the OS
    dirtied: int
    triggers_ms: float  # foreign-key checks and other triggers
    plan: str  # the node types, outermost first


def _summary(statement: str, runs: list[dict[str, Any]]) -> Explained:
    top = runs[-1]["Plan"]
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        name = node["Node Type"]
        if "Index Name" in node:
            name += f"({node['Index Name']})"
        nodes.append(name)
        for child in node.get("Plans", []):
            walk(child)

    walk(top)
    triggers = sum(t.get("Time", 0.0) for t in runs[-1].get("Triggers", []))
    return Explained(
        statement=statement,
        ms=statistics.median(r["Execution Time"] for r in runs),
        hit=top.get("Shared Hit Blocks", 0),
        read=top.get("Shared Read Blocks", 0),
        dirtied=top.get("Shared Dirtied Blocks", 0),
        triggers_ms=triggers,
        plan=" > ".join(nodes[:6]),
    )


def _new_devices(count: int) -> list[dict[str, object]]:
    prefix = f"explain-{uuid.uuid4().hex[:6]}"
    return [
        {
            **asdict(
                NewDevice(
                    device_id=f"{prefix}-{n:05d}",
                    heartbeat_interval_s=300,
                    postcode="SW1A 1AA",
                    migration_stage="scheduled",
                )
            ),
            # as devices/registry.py `insert_devices` sends a certificate device
            "postcode_district": "SW1A",
            "mqtt_password_hash": "sha256$x",
            "credential_kind": "certificate",
            "mqtt_password_broker": None,
        }
        for n in range(count)
    ]


def _once(conn: psycopg.Connection, count: int) -> dict[str, dict[str, Any]]:
    """Each statement of a registration of `count` devices, explained, then rolled back."""
    rows = _new_devices(count)
    ids = [str(r["device_id"]) for r in rows]
    now = datetime.now(UTC)
    plans: dict[str, dict[str, Any]] = {}

    def explain(label: str, query: str | sql.Composable, params: Any) -> None:
        cur = conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _bytes(conn, query), params
        )
        row = cur.fetchone()
        assert row is not None
        found = row[0] if isinstance(row[0], list) else json.loads(row[0])
        plans[label] = found[0]

    with conn.transaction(force_rollback=True):
        explain("devices insert (_INSERT)", _INSERT, {"rows": Jsonb(rows), "actor": "bench"})
        explain(
            "audit insert (1 row)",
            _AUDIT,
            ["bench", "technician", None, "device.register", "device", ids[0], "{}"],
        )
        explain(
            f"certificates insert ({count})",
            _CERTIFICATES,
            [
                [uuid.uuid4().int >> 66 for _ in ids],
                ids,
                ["f" * 64] * count,
                [now] * count,
                [now + timedelta(days=730)] * count,
                ["generated"] * count,
                ["bench"] * count,
            ],
        )
        explain("read back (fetch_device)", _ONE, [ids[0]])
        explain("publisher: revoked mark", _CRL_MARK, None)
        explain("publisher: listed", _LISTED, [now])
    return plans


def _bytes(conn: psycopg.Connection, query: str | sql.Composable) -> bytes:
    if isinstance(query, str):
        return query.encode()
    return query.as_bytes(conn)


def _audit_many_ms(conn: psycopg.Connection, count: int) -> float:
    """The audit entries of a registration of `count` devices as db/audit.py writes them (one
    INSERT per entry in a pipeline, two entries per device with certificates), rolled back."""
    entries = [
        ("bench", "technician", None, action, "device", f"audit-{n:05d}", "{}")
        for n in range(count)
        for action in ("device.register", "device.certificate_issue")
    ]
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        started = time.perf_counter()
        cur.executemany(_AUDIT, entries)
        return (time.perf_counter() - started) * 1000


def explain_insert_path(url: str, count: int, repeat: int = 3) -> list[Explained]:
    """The statements of a registration of `count` devices, `repeat` times (the median)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    audit_ms: list[float] = []
    with psycopg.connect(url) as conn:
        for _ in range(repeat):
            for label, plan in _once(conn, count).items():
                runs.setdefault(label, []).append(plan)
            audit_ms.append(_audit_many_ms(conn, count))
    found = [_summary(label, plans) for label, plans in runs.items()]
    wall = Explained(
        f"audit x{2 * count} (executemany)",
        statistics.median(audit_ms),
        0,
        0,
        0,
        0.0,
        "wall time, no EXPLAIN",
    )
    return [*found, wall]


def print_explained(fleet: int, count: int, found: list[Explained]) -> None:
    print(f"  EXPLAIN (ANALYZE, BUFFERS), {count} device(s), fleet {fleet:,}:")
    for e in found:
        print(
            f"    {e.statement:<30} {e.ms:8.2f} ms  triggers {e.triggers_ms:7.2f} ms"
            f"  buffers hit {e.hit:>6} read {e.read:>5} dirtied {e.dirtied:>5}  {e.plan}"
        )
