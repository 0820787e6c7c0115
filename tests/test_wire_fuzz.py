"""Fuzzing the device message decoder: any bytes give a model or a reasoned Rejection, and
whatever is accepted can be stored in PostgreSQL and read back.

`TELECARE_FUZZ_EXAMPLES` sets the number of examples per property (default 300; e.g. 20000
for a long run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telecare.protocol.decode import Rejection, decode
from telecare.protocol.messages import Alarm, Heartbeat, MessageKind, Status
from tests.support import alarm, heartbeat

EXAMPLES = int(os.environ.get("TELECARE_FUZZ_EXAMPLES", "300"))
REASONS = {"invalid_json", "schema", "oversized"}
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KINDS = st.sampled_from([MessageKind.HEARTBEAT, MessageKind.ALARM, MessageKind.STATUS])

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


def _decoded(kind: MessageKind, payload: bytes) -> object:
    """What decode does with `payload`; anything but a model or a Rejection fails the test."""
    try:
        return decode(kind, payload)
    except Rejection as exc:
        assert exc.reason in REASONS
        assert exc.detail, "every reject is explained"
        return exc


@fuzz
@given(kind=KINDS, payload=st.binary(max_size=5000))
def test_any_bytes_decode_or_are_rejected_with_a_reason(kind: MessageKind, payload: bytes) -> None:
    _decoded(kind, payload)


@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ('{"a":', "}"), ('[{"a":', "}]")])
@pytest.mark.parametrize("depth", [100, 300, 1000, 1900])
def test_deep_nesting_is_rejected_not_a_crash(opener: str, closer: str, depth: int) -> None:
    """Python's JSON parser gives up at about 1000 levels (RecursionError), within 4096 bytes."""
    nested = opener * depth + "1" + closer * depth
    payload = json.dumps({**heartbeat(), "extra": "@"}).replace('"@"', nested).encode()
    decoded = _decoded(MessageKind.HEARTBEAT, payload)
    if depth >= 1000:
        assert isinstance(decoded, Rejection), decoded
        assert decoded.reason in {"invalid_json", "oversized"}


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
    decoded = _decoded(kind, payload)
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


@pytest.mark.parametrize(
    ("ts", "accepted"),
    [
        ("1970-01-01T00:00:00Z", True),  # a device whose clock was never set
        ("0001-01-01T00:00:00Z", True),
        ("9999-12-31T23:59:59Z", True),
        ("2099-06-01T12:00:00+14:00", True),
        ("0001-01-01T00:00:00+01:00", False),  # before year 1 in UTC
        ("9999-12-31T23:00:00-14:00", False),  # after year 9999 in UTC
        ("2026-11-23T06:00:00", False),  # no zone
    ],
)
def test_wrong_device_clocks_are_accepted_within_what_can_be_stored(
    ts: str, accepted: bool
) -> None:
    decoded = _decoded(MessageKind.ALARM, json.dumps({**alarm(), "ts": ts}).encode())
    assert isinstance(decoded, Alarm) is accepted, decoded
