"""A registry grown to a given size with SQL, as if every device had come through the API.

Each synthetic device has what a real registration leaves behind: its `devices` row (every
index of that table), its state, its first migration-history entry, its two audit entries
(`device.register`, `device.certificate_issue`) and its certificate. A share of the devices
also has an older certificate revoked as superseded and not yet expired: the revocation list
the backend rebuilds on every revocation. So the tables a registration writes to, and the
list a revocation rewrites, are at the size of the fleet, not only `devices`.

Rows go in with generate_series, a chunk per transaction, then VACUUM ANALYZE, as a fleet
loaded over months would have been vacuumed and analysed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

PREFIX = "fleet"
_CHUNK = 200_000
_TABLES = ("devices", "device_state", "migration_history", "audit_log", "device_certificates")

# One statement per table, over the devices numbered [lo, hi). Serials are 60 bits of an MD5:
# positive, spread over the key space like the CA's random ones, and distinct.
_IDS = (
    "SELECT g, %(prefix)s || '-' || lpad(g::text, 7, '0') AS id"
    " FROM generate_series(%(lo)s::int, %(hi)s::int - 1) g"
)
_FILL = [
    f"""INSERT INTO devices (device_id, heartbeat_interval_s, postcode, postcode_district, model,
        migration_stage, stage_changed_at, registered_at, updated_at, mqtt_password_set_at,
        mqtt_password_hash, credential_kind)
    SELECT id, 300, 'Z' || mod(g, 2500) || ' 1AA', 'Z' || mod(g, 2500), 'hub-' || mod(g, 20),
        'complete', now() - interval '30 days', now() - interval '30 days',
        now() - interval '30 days', now() - interval '30 days', 'sha256$' || md5(id),
        'certificate'
    FROM ({_IDS}) n""",
    f"""INSERT INTO device_state (device_id, last_heartbeat_at, power, battery_pct, signal_dbm,
        network, firmware)
    SELECT id, now() - interval '1 minute', 'mains', 90, -70, 'wifi', 'fw-' || mod(g, 8)
    FROM ({_IDS}) n""",
    f"""INSERT INTO migration_history (device_id, at, actor, to_stage, note)
    SELECT id, now() - interval '30 days', 'bench', 'complete', 'registered' FROM ({_IDS}) n""",
    f"""INSERT INTO audit_log (at, actor, actor_role, action, target_type, target_id, details)
    SELECT now() - interval '30 days', 'bench', 'technician', action, 'device', id, details
    FROM ({_IDS}) n, LATERAL (VALUES
        ('device.register', jsonb_build_object('migration_stage', 'complete')),
        ('device.certificate_issue', jsonb_build_object('serial', upper(substr(md5(id), 1, 15)),
            'not_after', now() + interval '700 days', 'key_source', 'generated'))
    ) AS a(action, details)""",
    f"""INSERT INTO device_certificates (serial, device_id, fingerprint_sha256, not_before,
        not_after, key_source, issued_at, issued_by)
    SELECT ('x' || substr(md5('c' || id), 1, 15))::bit(60)::bigint + 1, id,
        md5(id) || md5(id), now() - interval '30 days', now() + interval '700 days',
        'generated', now() - interval '30 days', 'bench'
    FROM ({_IDS}) n""",
    # the superseded certificate of one device in `every`, still in the revocation list
    f"""INSERT INTO device_certificates (serial, device_id, fingerprint_sha256, not_before,
        not_after, key_source, issued_at, issued_by, revoked_at, revoked_by, revocation_reason)
    SELECT ('x' || substr(md5('r' || id), 1, 15))::bit(60)::bigint + 1, id,
        md5('r' || id) || md5(id), now() - interval '60 days', now() + interval '670 days',
        'generated', now() - interval '60 days', 'bench', now() - interval '30 days', 'bench',
        'superseded'
    FROM ({_IDS}) n WHERE %(every)s > 0 AND mod(g, %(every)s) = 0""",
]


def registered(url: str) -> tuple[int, int]:
    """(devices registered, of which synthetic)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE device_id LIKE %s) FROM devices",
            [f"{PREFIX}-%"],
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def revoked_listed(url: str) -> int:
    """Certificates the revocation list carries (revoked, not expired)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM device_certificates"
            " WHERE revoked_at IS NOT NULL AND not_after > now()"
        ).fetchone()
    return int(row[0]) if row else 0


def fill_to(url: str, target: int, revoked_share: float, say: Callable[[str], None]) -> float:
    """Add synthetic devices until `target` are registered; the seconds it took (0: none)."""
    total, synthetic = registered(url)
    missing = target - total
    if missing <= 0:
        return 0.0
    every = round(1 / revoked_share) if revoked_share > 0 else 0
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for lo in range(synthetic, synthetic + missing, _CHUNK):
            hi = min(lo + _CHUNK, synthetic + missing)
            params = {"prefix": PREFIX, "lo": lo, "hi": hi, "every": every}
            with conn.transaction():
                for statement in _FILL:
                    conn.execute(statement, params)
            took = time.perf_counter() - started
            say(f"  filled {hi - synthetic:,} of {missing:,} ({took:.0f} s)")
    with psycopg.connect(url, autocommit=True) as conn:  # VACUUM runs outside a transaction
        for table in _TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
    seconds = time.perf_counter() - started
    say(f"  {missing:,} devices added in {seconds:.0f} s (with VACUUM ANALYZE)")
    return seconds
