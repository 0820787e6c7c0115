"""A device's heartbeat history, raw or in time buckets, newest first (the device page chart).

Buckets are TimescaleDB's `time_bucket` where `heartbeats` is a hypertable and PostgreSQL's
`date_bin` otherwise, both aligned to the same origin (Monday 2000-01-03 00:00 UTC,
time_bucket's default), so a bucket starts at the same instant on either. A bucket with no
heartbeat is not listed: a silent device shows as a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from telecare.db.migrations.runner import is_hypertable
from telecare.db.pool import Pool

_RAW = """
SELECT received_at, device_ts, msg_id, seq, power, battery_pct, signal_dbm, network, firmware
FROM heartbeats
WHERE device_id = %(device_id)s AND received_at >= %(since)s AND received_at < %(until)s
  AND (%(before_at)s::timestamptz IS NULL
       OR (received_at, msg_id) < (%(before_at)s, %(before_msg)s))
ORDER BY received_at DESC, msg_id DESC
LIMIT %(limit)s
"""

_BUCKETED = """
SELECT {bucket} AS bucket, count(*) AS heartbeats,
       round(avg(battery_pct), 1)::float8 AS battery_pct_avg, min(battery_pct) AS battery_pct_min,
       round(avg(signal_dbm), 1)::float8 AS signal_dbm_avg, min(signal_dbm) AS signal_dbm_min,
       count(*) FILTER (WHERE power = 'battery') AS on_battery
FROM heartbeats
WHERE device_id = %(device_id)s AND received_at >= %(since)s AND received_at < %(until)s
GROUP BY 1
ORDER BY 1 DESC
LIMIT %(limit)s
"""
_TIME_BUCKET = sql.SQL("time_bucket(%(bucket)s::interval, received_at, %(origin)s::timestamptz)")
_DATE_BIN = sql.SQL("date_bin(%(bucket)s::interval, received_at, %(origin)s::timestamptz)")
ORIGIN = datetime.fromisoformat("2000-01-03T00:00:00+00:00")


@dataclass(frozen=True)
class HeartbeatRecord:
    received_at: datetime
    device_ts: datetime
    msg_id: str
    seq: int
    power: str
    battery_pct: int | None
    signal_dbm: int | None
    network: str
    firmware: str | None


@dataclass(frozen=True)
class HeartbeatBucket:
    bucket: datetime  # the bucket's start
    heartbeats: int
    battery_pct_avg: float | None
    battery_pct_min: int | None
    signal_dbm_avg: float | None
    signal_dbm_min: int | None
    on_battery: int  # heartbeats that said power: battery


async def raw_heartbeats(
    pool: Pool,
    device_id: str,
    *,
    since: datetime,
    until: datetime,
    before: tuple[datetime, str] | None = None,
    limit: int,
) -> list[HeartbeatRecord]:
    """Heartbeats received in [since, until), newest first; `before` = (received_at, msg_id)
    of the last one of the previous page."""
    before_at, before_msg = before or (None, None)
    params = {
        "device_id": device_id,
        "since": since,
        "until": until,
        "before_at": before_at,
        "before_msg": before_msg,
        "limit": limit,
    }
    async with (
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(HeartbeatRecord)) as cur,
    ):
        await cur.execute(_RAW, params)
        return await cur.fetchall()


async def heartbeat_buckets(
    pool: Pool,
    device_id: str,
    *,
    since: datetime,
    until: datetime,
    bucket: timedelta,
    limit: int,
    timescale: bool | None = None,
) -> list[HeartbeatBucket]:
    """Buckets of `bucket` with a heartbeat in [since, until), newest first. `timescale` picks
    the bucket function (None: time_bucket when heartbeats is a hypertable)."""
    params = {
        "device_id": device_id,
        "since": since,
        "until": until,
        "bucket": bucket,
        "origin": ORIGIN,
        "limit": limit,
    }
    async with pool.connection() as conn:
        if timescale is None:
            timescale = await is_hypertable(conn, "heartbeats")
        query = sql.SQL(_BUCKETED).format(bucket=_TIME_BUCKET if timescale else _DATE_BIN)
        return await _fetch_buckets(conn, query, params)


async def _fetch_buckets(
    conn: AsyncConnection, query: sql.Composed, params: dict[str, object]
) -> list[HeartbeatBucket]:
    async with conn.cursor(row_factory=class_row(HeartbeatBucket)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
