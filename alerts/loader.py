"""What the engine reads back from the database at start, at a takeover and on a device change.

Everything is read per partition (`devices.engine_partition`) with server-side cursors, in
chunks, so loading a million devices neither holds them all in one result nor stops the event
loop for long.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telecare.alerts.device_rules import DeviceSnapshot
from telecare.alerts.types import MIGRATING_STAGES, AlertType
from telecare.db.pool import Pool

CHUNK = 10_000

_SILENCE = frozenset({AlertType.HEARTBEAT_MISSED, AlertType.MIGRATION_DROPOUT})
_OpenAlert = tuple[AlertType, datetime, dict[str, Any]]

_DEVICES = """
SELECT d.device_id, d.heartbeat_interval_s, d.heartbeat_grace_s, d.migration_stage,
       d.stage_changed_at, s.last_heartbeat_at, s.power, s.connection, s.connection_at,
       d.postcode_district, s.network, d.decommissioned_at
FROM devices d LEFT JOIN device_state s USING (device_id)
"""
_OPEN_ALERTS = """
SELECT a.device_id, a.type, a.raised_at, a.details FROM alerts a JOIN devices d USING (device_id)
WHERE a.state <> 'resolved' AND a.type <> 'alarm_unhandled' AND d.decommissioned_at IS NULL
  AND d.engine_partition = ANY(%(partitions)s)
"""
_RECENT_DROPS = """
SELECT a.device_id, a.raised_at FROM alerts a JOIN devices d USING (device_id)
WHERE a.type IN ('heartbeat_missed', 'migration_dropout', 'connection_lost')
  AND a.raised_at > now() - make_interval(secs => %(window_s)s)
  AND d.decommissioned_at IS NULL AND d.engine_partition = ANY(%(partitions)s)
ORDER BY a.raised_at
"""
_DECOMMISSIONED_WITH_ALERTS = """
SELECT DISTINCT a.device_id FROM alerts a JOIN devices d USING (device_id)
WHERE a.state <> 'resolved' AND d.decommissioned_at IS NOT NULL
  AND d.engine_partition = ANY(%(partitions)s)
"""
_OPEN_ALARMS = """
SELECT a.id, a.device_id, a.event, a.received_at,
       EXISTS (SELECT 1 FROM alerts u
               WHERE u.subject = 'alarm_unhandled:' || a.id AND u.state <> 'resolved')
FROM alarms a JOIN devices d USING (device_id)
WHERE a.state = 'open' AND d.decommissioned_at IS NULL
  AND d.engine_partition = ANY(%(partitions)s)
"""
_STALE_UNHANDLED = """
SELECT u.subject FROM alerts u JOIN alarms a ON u.subject = 'alarm_unhandled:' || a.id
JOIN devices d ON d.device_id = a.device_id
WHERE u.type = 'alarm_unhandled' AND u.state <> 'resolved' AND a.state <> 'open'
  AND d.engine_partition = ANY(%(partitions)s)
"""
_PLACES = """
SELECT d.device_id, d.postcode_district, s.network
FROM devices d LEFT JOIN device_state s USING (device_id)
WHERE d.decommissioned_at IS NULL
"""
_OPEN_MEMBERS = """
SELECT subject, device_id, type, raised_at FROM alerts
WHERE state <> 'resolved' AND type = ANY(%s) ORDER BY raised_at
"""
_OPEN_OUTAGES = """
SELECT g.area, g.details, coalesce(array_agg(m.device_id) FILTER (WHERE m.id IS NOT NULL), '{}')
FROM alerts g LEFT JOIN alerts m ON m.group_id = g.id AND m.state <> 'resolved'
WHERE g.type = 'area_outage' AND g.state <> 'resolved'
GROUP BY g.id
"""


_WINDOWS: dict[int, int] = {}  # one int object per distinct window, not one per device


def window_s(interval_s: int, grace_s: int | None) -> int:
    """docs/PROTOCOL.md section 3: overdue after interval + grace; grace defaults to
    min(interval, 900)."""
    window = interval_s + (grace_s if grace_s is not None else min(interval_s, 900))
    return _WINDOWS.setdefault(window, window)


@dataclass(frozen=True)
class DeviceRow:
    """One device as read back: what the rules need, and where it is for area outages."""

    snapshot: DeviceSnapshot | None  # None: decommissioned
    district: str | None
    network: str | None


@dataclass(frozen=True)
class OpenAlarm:
    alarm_id: int
    device_id: str
    event: str
    received_at: datetime
    raised: bool  # its alarm_unhandled alert is open


@dataclass(frozen=True)
class PartitionState:
    open_alarms: list[OpenAlarm]
    stale_unhandled: list[str]  # alarm_unhandled subjects whose alarm was taken meanwhile
    decommissioned: list[str]  # devices with alerts still open


@dataclass(frozen=True)
class OpenOutage:
    area: str
    cause: str
    threshold: int
    members: set[str]


async def devices_of(
    pool: Pool, partitions: Sequence[int], *, flapping_window_s: int
) -> AsyncIterator[list[DeviceRow]]:
    """The active devices of `partitions`, with their open alerts, in chunks."""
    params = {"partitions": list(partitions), "window_s": flapping_window_s}
    async with pool.connection() as conn:
        cur = await conn.execute(_OPEN_ALERTS, params)
        open_alerts: dict[str, list[_OpenAlert]] = defaultdict(list)
        for device_id, alert_type, raised_at, details in await cur.fetchall():
            open_alerts[device_id].append((AlertType(alert_type), raised_at, details))
        cur = await conn.execute(_RECENT_DROPS, params)
        drops: dict[str, list[datetime]] = defaultdict(list)
        for device_id, raised_at in await cur.fetchall():
            drops[device_id].append(raised_at)
        async with conn.transaction():
            query = _DEVICES + " WHERE d.decommissioned_at IS NULL"
            query += " AND d.engine_partition = ANY(%(partitions)s)"
            async with conn.cursor(name="engine_devices") as cursor:
                await cursor.execute(query, params)
                while rows := await cursor.fetchmany(CHUNK):
                    yield [
                        _row(row, open_alerts.get(row[0], []), tuple(drops.get(row[0], ())))
                        for row in rows
                    ]


async def device(pool: Pool, device_id: str) -> DeviceRow | None:
    """One device after a change of its registration; None if it does not exist."""
    async with pool.connection() as conn:
        cur = await conn.execute(_DEVICES + " WHERE d.device_id = %s", [device_id])
        row = await cur.fetchone()
    return None if row is None else _row(row, [], ())


async def partition_state(pool: Pool, partitions: Sequence[int]) -> PartitionState:
    params = {"partitions": list(partitions)}
    async with pool.connection() as conn:
        cur = await conn.execute(_OPEN_ALARMS, params)
        alarms = [OpenAlarm(*row) for row in await cur.fetchall()]
        cur = await conn.execute(_STALE_UNHANDLED, params)
        stale = [row[0] for row in await cur.fetchall()]
        cur = await conn.execute(_DECOMMISSIONED_WITH_ALERTS, params)
        decommissioned = [row[0] for row in await cur.fetchall()]
    return PartitionState(alarms, stale, decommissioned)


async def places(pool: Pool) -> AsyncIterator[list[tuple[str, str | None, str | None]]]:
    """Every active device's district and bearer, for the area tracker, in chunks."""
    async with (
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor(name="engine_places") as cursor,
    ):
        await cursor.execute(_PLACES)
        while rows := await cursor.fetchmany(CHUNK):
            yield [(sys.intern(d), district, network) for d, district, network in rows]


async def open_members(
    pool: Pool, types: Sequence[AlertType]
) -> list[tuple[str, str, AlertType, datetime]]:
    async with pool.connection() as conn:
        cur = await conn.execute(_OPEN_MEMBERS, [[t.value for t in types]])
        return [(s, d, AlertType(t), at) for s, d, t, at in await cur.fetchall()]


async def open_outages(pool: Pool) -> list[OpenOutage]:
    async with pool.connection() as conn:
        cur = await conn.execute(_OPEN_OUTAGES)
        rows = await cur.fetchall()
    return [
        OpenOutage(area, details.get("cause", "silence"), int(details.get("threshold", 1)), set(m))
        for area, details, m in rows
    ]


def _row(
    row: tuple[Any, ...], open_alerts: list[_OpenAlert], drops: tuple[datetime, ...]
) -> DeviceRow:
    (device_id, interval_s, grace_s, stage, stage_changed_at, last_heartbeat_at, power,
     connection, connection_at, district, network, decommissioned_at) = row  # fmt: skip
    device_id = sys.intern(device_id)  # one string shared by the rules and the area tracker
    if decommissioned_at is not None:
        return DeviceRow(None, district, network)
    since = stage_changed_at
    if last_heartbeat_at is not None and last_heartbeat_at > since:
        since = last_heartbeat_at
    beat = last_heartbeat_at or datetime.min.replace(tzinfo=stage_changed_at.tzinfo)
    online_at = connection_at if connection == "online" and connection_at else beat
    offline = connection == "offline" and connection_at is not None and connection_at > beat
    cleared = set()
    for alert_type, raised_at, details in open_alerts:
        if (alert_type in _SILENCE and beat > raised_at) or (
            alert_type is AlertType.CONNECTION_LOST and max(beat, online_at) > raised_at
        ):
            cleared.add(alert_type)
        elif alert_type is AlertType.FLAPPING and details.get("last_drop_at"):
            drops = (*drops, datetime.fromisoformat(details["last_drop_at"]))
    snapshot = DeviceSnapshot(
        device_id=device_id,
        window_s=window_s(interval_s, grace_s),
        migrating=stage in MIGRATING_STAGES,
        since=since,
        on_battery=power == "battery",
        offline=offline and AlertType.CONNECTION_LOST not in cleared,
        open_types=frozenset(t for t, _, _ in open_alerts) - cleared,
        cleared_types=frozenset(cleared),
        recent_drops=drops,
        last_heartbeat_at=last_heartbeat_at,
        connection_at=connection_at,
    )
    return DeviceRow(snapshot, district, network)
