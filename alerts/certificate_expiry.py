"""`certificate_expiring`: a device whose certificate lapses soon, raised while there is time.

A device whose certificate expires is refused by the broker and goes silent: the alert engine
would then raise `heartbeat_missed`, too late to do anything but send a technician. So every
active device whose newest certificate in use expires within
TELECARE_CERTIFICATE_EXPIRY_WARNING_DAYS gets this alert (details: serial, not_after,
expired), and it resolves itself once a re-issued certificate reaches past the window or the
device is decommissioned. The look is hourly and indexed by expiry (migration 0008), so its cost
follows the certificates about to lapse, not the fleet; actions are idempotent by subject, so
several alert processes change nothing twice; an advisory lock keeps their looks apart.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from telecare.alerts.decisions import Raise, Resolve, device_subject
from telecare.alerts.types import AlertType
from telecare.alerts.writer import write_actions
from telecare.db.pool import Pool

log = logging.getLogger(__name__)

LOOK_EVERY_S = 3600.0
RETRY_AFTER_S = 60.0
# One look at a time across processes: two overlapping looks could re-raise an alert the
# other had just resolved from what it read before a re-issue.
_LOCK_KEY = 0x7E1EC5C

# Devices in use whose every certificate in use lapses before the window's end.
_DUE = """
SELECT DISTINCT ON (c.device_id) c.device_id, c.serial, c.not_after
FROM device_certificates c JOIN devices d USING (device_id)
WHERE c.revoked_at IS NULL AND c.not_after < %(until)s AND d.decommissioned_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM device_certificates n
                  WHERE n.device_id = c.device_id AND n.revoked_at IS NULL
                    AND n.not_after >= %(until)s)
ORDER BY c.device_id, c.not_after DESC
"""
_OPEN = "SELECT subject FROM alerts WHERE type = %s AND state <> 'resolved'"


async def check_certificate_expiry(pool: Pool, *, warning_days: int, now: datetime) -> int | None:
    """Raise for devices newly due, resolve for those no longer due; the alerts raised, or None
    when another process is looking at this moment (it does the same)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        row = await cur.fetchone()
        if not row or not row[0]:
            return None
        try:
            return await _check(conn, pool, warning_days=warning_days, now=now)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


async def _check(conn: AsyncConnection, pool: Pool, *, warning_days: int, now: datetime) -> int:
    until = now + timedelta(days=warning_days)
    cur = await conn.execute(_DUE, {"until": until})
    due = await cur.fetchall()
    cur = await conn.execute(_OPEN, [AlertType.CERTIFICATE_EXPIRING.value])
    open_subjects = {subject for (subject,) in await cur.fetchall()}
    kind = AlertType.CERTIFICATE_EXPIRING
    raises = [
        Raise(
            device_subject(kind, device_id),
            kind,
            now,
            device_id=device_id,
            details={
                "serial": f"{serial:X}",
                "not_after": not_after.isoformat(),
                "expired": not_after <= now,
            },
        )
        for device_id, serial, not_after in due
    ]
    due_subjects = {r.subject for r in raises}
    resolves = [Resolve(s, now, "system") for s in sorted(open_subjects - due_subjects)]
    new = [r for r in raises if r.subject not in open_subjects]
    if new or resolves:
        await write_actions(pool, [*new, *resolves])
        log.info("certificate expiry raised=%d resolved=%d", len(new), len(resolves))
    return len(new)


async def watch_certificate_expiry(pool: Pool, *, warning_days: int) -> None:
    """Look hourly; a failed look is logged and tried again a minute later."""
    while True:
        try:
            await check_certificate_expiry(pool, warning_days=warning_days, now=datetime.now(UTC))
        except Exception:
            log.exception("certificate expiry check failed; trying again in a minute")
            await asyncio.sleep(RETRY_AFTER_S)
        else:
            await asyncio.sleep(LOOK_EVERY_S)
