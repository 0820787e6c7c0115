"""Fuzzing the device message decoder against PostgreSQL: whatever it accepts can be stored and
read back (what it does with any bytes is tests/unit/test_wire_fuzz_decode.py).

`TELECARE_FUZZ_EXAMPLES` sets the number of examples per property (default 300; e.g. 20000
for a long run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telecare.protocol.messages import Alarm, Heartbeat, MessageKind, Status
from tests.support import alarm, heartbeat
from tests.unit.test_wire_fuzz_decode import KINDS, decode_or_reject, fuzz

# JSON values of every shape, odd unicode and numbers PostgreSQL cannot hold included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
ZONES = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
TIMES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=ZONES)


def _mutated(base: dict[str, Any], changes: dict[str, Any], drop: list[str]) -> bytes:
    body = {k: v for k, v in base.items() if k not in drop}
    body.update(changes)
    return json.dumps(body, default=str).encode("utf-8", errors="surrogatepass")


FIELDS = {
    MessageKind.HEARTBEAT: list(Heartbeat.model_fields),
    MessageKind.ALARM: list(Alarm.model_fields),
    MessageKind.STATUS: list(Status.model_fields),
}
BASES: dict[MessageKind, Callable[[], dict[str, Any]]] = {
    MessageKind.HEARTBEAT: heartbeat,
    MessageKind.ALARM: alarm,
    MessageKind.STATUS: lambda: {"state": "online"},
}


@st.composite
def messages(draw: st.DrawFn) -> tuple[MessageKind, bytes]:
    """A valid message with some fields replaced by any JSON value, a time or removed."""
    kind = draw(KINDS)
    names = FIELDS[kind]
    replace = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    values = {
        name: draw(JSON | TIMES.map(datetime.isoformat) | st.sampled_from(["", "\x00", "Z"]))
        for name in replace
    }
    drop = draw(st.lists(st.sampled_from(names), max_size=1))
    return kind, _mutated(BASES[kind](), values, drop)


_ALARM_ROW = """
INSERT INTO fuzz_alarms (msg_id, device_ts, seq, peripheral, detail)
VALUES (%s, %s, %s, %s, %s) RETURNING device_ts
"""
_HEARTBEAT_ROW = """
INSERT INTO fuzz_heartbeats (msg_id, device_ts, seq, firmware, peripherals)
VALUES (%s, %s, %s, %s, %s) RETURNING device_ts
"""


@pytest.fixture(scope="module")
def scratch(database_url: str) -> Any:
    """Tables with the column types of `alarms` and `heartbeats`, for what the decoder accepts."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE fuzz_alarms (msg_id text, device_ts timestamptz, seq bigint,"
            " peripheral text, detail text)"
        )
        conn.execute(
            "CREATE TEMP TABLE fuzz_heartbeats (msg_id text, device_ts timestamptz, seq bigint,"
            " firmware text, peripherals jsonb)"
        )
        yield conn


@fuzz
@given(message=messages())
def test_what_is_accepted_can_be_stored_and_read_back(
    scratch: psycopg.Connection[Any], message: tuple[MessageKind, bytes]
) -> None:
    kind, payload = message
    decoded = decode_or_reject(kind, payload)
    if isinstance(decoded, Alarm):
        row = (decoded.msg_id, decoded.ts, decoded.seq, decoded.peripheral, decoded.detail)
        stored = scratch.execute(_ALARM_ROW, row).fetchone()
    elif isinstance(decoded, Heartbeat):
        peripherals = (
            None
            if decoded.peripherals is None
            else json.dumps([p.model_dump() for p in decoded.peripherals])
        )
        row = (decoded.msg_id, decoded.ts, decoded.seq, decoded.firmware, peripherals)
        stored = scratch.execute(_HEARTBEAT_ROW, row).fetchone()
    else:
        return
    assert stored is not None
    assert stored[0] == decoded.ts.astimezone(UTC)
