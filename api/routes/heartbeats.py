"""/api/v1/devices/{id}/heartbeats: a device's heartbeat history, raw or bucketed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from telecare.api.deps import AnyRole, PoolDep
from telecare.api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page
from telecare.api.validation import unprocessable
from telecare.devices.registry import get_device
from telecare.devices.telemetry import (
    HeartbeatBucket,
    HeartbeatRecord,
    heartbeat_buckets,
    raw_heartbeats,
)

router = APIRouter(prefix="/devices", tags=["devices"])

DEFAULT_SPAN = timedelta(hours=24)
MAX_BUCKETED_SPAN = timedelta(days=92)
MIN_BUCKET = timedelta(seconds=10)
MAX_BUCKET = timedelta(days=7)
_BUCKET = re.compile(r"(\d{1,7})([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bucket(text: str) -> timedelta:
    """`300`, `300s`, `5m`, `1h` or `1d`: 10 s to 7 days."""
    match = _BUCKET.fullmatch(text.strip())
    if match is None:
        raise unprocessable("query", "bucket", "a duration such as 300s, 5m, 1h or 1d")
    size = timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    if not MIN_BUCKET <= size <= MAX_BUCKET:
        raise unprocessable("query", "bucket", "between 10s and 7d")
    return size


@router.get("/{device_id}/heartbeats")
async def history(
    device_id: str,
    pool: PoolDep,
    _: AnyRole,
    since: Annotated[
        AwareDatetime | None, Query(description="from this time (default: `until` - 24 h)")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="before this time (default: now)")
    ] = None,
    bucket: Annotated[
        str | None, Query(description="e.g. 5m, 1h: one row per bucket instead of each heartbeat")
    ] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[HeartbeatRecord] | Page[HeartbeatBucket]:
    """Newest first. Raw: each heartbeat received in [since, until). Bucketed: per bucket the
    count, battery and signal (average and minimum) and how many said `power: battery`."""
    size = parse_bucket(bucket) if bucket is not None else None
    end = until or datetime.now(UTC)
    start = since or end - DEFAULT_SPAN
    if start >= end:
        raise unprocessable("query", "since", "must be before `until`")
    if size is not None and end - start > MAX_BUCKETED_SPAN:
        raise unprocessable("query", "since", "bucketed history covers at most 92 days at once")
    after = _cursor(cursor)
    await get_device(pool, device_id)  # 404 for an unknown device
    if size is None:
        raw = await raw_heartbeats(
            pool, device_id, since=start, until=end, before=after, limit=limit + 1
        )
        return page(
            raw, limit, item=lambda r: r, key=lambda r: f"{r.received_at.isoformat()}|{r.msg_id}"
        )
    if after is not None:
        end = min(end, after[0])
    buckets = await heartbeat_buckets(
        pool, device_id, since=start, until=end, bucket=size, limit=limit + 1
    )
    return page(buckets, limit, item=lambda b: b, key=lambda b: f"{b.bucket.isoformat()}|")


def _cursor(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    at, _, msg_id = value.partition("|")
    try:
        return datetime.fromisoformat(at), msg_id
    except ValueError:
        raise unprocessable("query", "cursor", "not a cursor returned by this API") from None
