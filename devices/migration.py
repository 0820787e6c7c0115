"""The analogue-to-digital switchover of each home: stages, evidence and history.

    analogue -> scheduled -> in_progress -> verifying -> complete
                    ^             |             |
                    +-- failed <--+-------------+

`verifying` -> `complete` needs evidence that the digital path works end to end:

1. a heartbeat received since the device entered `verifying`, and
2. a `test` alarm received since the cut-over began (the device's latest entry into
   `in_progress`; its entry into `verifying` if it never was in progress) that an operator has
   acknowledged: the alarm reached the monitoring centre and a person answered it.

Every stage change sets `stage_changed_at` (the liveness window restarts from it,
docs/PROTOCOL.md section 3), writes a history row (who, when, from, to, note, evidence) and the
audit log, and notifies the other processes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from telecare.db import audit
from telecare.db.notifications import DEVICE_CHANGED, notify
from telecare.db.pool import Pool
from telecare.devices.errors import InvalidStageTransition, MissingEvidence
from telecare.devices.registry import fetch_device, lock_active_device

log = logging.getLogger(__name__)

STAGES = ("analogue", "scheduled", "in_progress", "verifying", "complete", "failed")
NEXT_STAGES: dict[str, tuple[str, ...]] = {
    "analogue": ("scheduled",),
    "scheduled": ("in_progress",),
    "in_progress": ("verifying", "failed"),
    "verifying": ("complete", "failed"),
    "complete": (),
    "failed": ("scheduled",),
}


@dataclass(frozen=True)
class Evidence:
    """What speaks for completing a device in `verifying`, and what is still missing."""

    verifying_since: datetime
    cutover_at: datetime
    last_heartbeat_at: datetime | None
    test_alarm_id: int | None
    test_alarm_received_at: datetime | None
    test_alarm_acknowledged_by: str | None
    missing: list[str]


@dataclass(frozen=True)
class StageChange:
    at: datetime
    actor: str
    from_stage: str | None
    to_stage: str
    note: str | None
    evidence: dict[str, Any] | None


@dataclass(frozen=True)
class MigrationView:
    device_id: str
    migration_stage: str
    stage_changed_at: datetime
    next_stages: tuple[str, ...]
    evidence: Evidence | None  # while verifying: what completing it would rest on
    history: list[StageChange]


_EVIDENCE = """
SELECT d.stage_changed_at,
       coalesce((SELECT max(h.at) FROM migration_history h
                 WHERE h.device_id = d.device_id AND h.to_stage = 'in_progress'),
                d.stage_changed_at) AS cutover_at,
       s.last_heartbeat_at
FROM devices d LEFT JOIN device_state s USING (device_id)
WHERE d.device_id = %s
"""
# The acknowledged test alarm if there is one, else the latest unacknowledged one.
_TEST_ALARM = """
SELECT id, received_at, acknowledged_by FROM alarms
WHERE device_id = %s AND event = 'test' AND received_at >= %s
ORDER BY acknowledged_at IS NOT NULL DESC, received_at DESC
LIMIT 1
"""


async def collect_evidence(conn: AsyncConnection, device_id: str) -> Evidence:
    cur = await conn.execute(_EVIDENCE, [device_id])
    row = await cur.fetchone()
    assert row is not None, "the caller has found the device"
    verifying_since, cutover_at, last_heartbeat_at = row
    cur = await conn.execute(_TEST_ALARM, [device_id, cutover_at])
    alarm = await cur.fetchone()
    alarm_id, alarm_at, acknowledged_by = alarm or (None, None, None)
    missing = []
    if last_heartbeat_at is None or last_heartbeat_at < verifying_since:
        missing.append(
            f"no heartbeat received since the device entered verifying at {_when(verifying_since)}"
        )
    if alarm_id is None:
        missing.append(f"no test alarm received since the cut-over began at {_when(cutover_at)}")
    elif acknowledged_by is None:
        missing.append(f"test alarm {alarm_id} has not been acknowledged by an operator yet")
    return Evidence(
        verifying_since=verifying_since,
        cutover_at=cutover_at,
        last_heartbeat_at=last_heartbeat_at,
        test_alarm_id=alarm_id,
        test_alarm_received_at=alarm_at,
        test_alarm_acknowledged_by=acknowledged_by,
        missing=missing,
    )


async def change_stage(
    pool: Pool, device_id: str, to_stage: str, *, note: str | None, actor: audit.Actor
) -> MigrationView:
    """Move the device to `to_stage`: InvalidStageTransition or MissingEvidence if it may not."""
    async with pool.connection() as conn, conn.transaction():
        device = await lock_active_device(conn, device_id)
        from_stage = device.migration_stage
        allowed = NEXT_STAGES[from_stage]
        if to_stage not in allowed:
            raise InvalidStageTransition(device_id, from_stage, to_stage, allowed)
        evidence = None
        if to_stage == "complete":
            evidence = await collect_evidence(conn, device_id)
            if evidence.missing:
                raise MissingEvidence(device_id, evidence.missing)
        await conn.execute(
            "UPDATE devices SET migration_stage = %s, stage_changed_at = now(),"
            " updated_at = now() WHERE device_id = %s",
            [to_stage, device_id],
        )
        await conn.execute(
            "INSERT INTO migration_history (device_id, actor, from_stage, to_stage, note,"
            " evidence) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                device_id,
                actor.name,
                from_stage,
                to_stage,
                note,
                Jsonb(asdict(evidence), dumps=_dumps) if evidence else None,
            ],
        )
        await audit.record(
            conn,
            actor,
            action="device.migration",
            target_type="device",
            target_id=device_id,
            details={"from": from_stage, "to": to_stage, "with_note": note is not None},
        )
        await notify(conn, DEVICE_CHANGED, device_id)
        view = await _view(conn, device_id)
    log.info(
        "migration stage changed device=%s from=%s to=%s actor=%s",
        device_id,
        from_stage,
        to_stage,
        actor.name,
    )
    return view


async def get_migration(pool: Pool, device_id: str) -> MigrationView:
    async with pool.connection() as conn:
        return await _view(conn, device_id)


async def _view(conn: AsyncConnection, device_id: str) -> MigrationView:
    device = await fetch_device(conn, device_id)
    async with conn.cursor(row_factory=class_row(StageChange)) as cur:
        await cur.execute(
            "SELECT at, actor, from_stage, to_stage, note, evidence FROM migration_history"
            " WHERE device_id = %s ORDER BY id",
            [device_id],
        )
        history = await cur.fetchall()
    verifying = device.migration_stage == "verifying" and device.decommissioned_at is None
    return MigrationView(
        device_id=device_id,
        migration_stage=device.migration_stage,
        stage_changed_at=device.stage_changed_at,
        next_stages=() if device.decommissioned_at else NEXT_STAGES[device.migration_stage],
        evidence=await collect_evidence(conn, device_id) if verifying else None,
        history=history,
    )


def _dumps(value: object) -> str:
    return json.dumps(value, default=str)


def _when(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
