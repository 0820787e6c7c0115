"""Fuzzing the device message decoder: any bytes give a model or a Rejection with a reason, deep
nesting is refused rather than a crash, and device clocks are accepted within what can be stored.

`TELECARE_FUZZ_EXAMPLES` sets the number of examples per property (default 300; e.g. 20000
for a long run). That what is accepted can be stored in PostgreSQL and read back is
tests/integration/test_wire_fuzz.py.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telecare.protocol.decode import Rejection, decode
from telecare.protocol.messages import Alarm, MessageKind
from tests.support import alarm, heartbeat

EXAMPLES = int(os.environ.get("TELECARE_FUZZ_EXAMPLES", "300"))
REASONS = {"invalid_json", "schema", "oversized"}
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KINDS = st.sampled_from([MessageKind.HEARTBEAT, MessageKind.ALARM, MessageKind.STATUS])


def decode_or_reject(kind: MessageKind, payload: bytes) -> object:
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
    decode_or_reject(kind, payload)


@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ('{"a":', "}"), ('[{"a":', "}]")])
@pytest.mark.parametrize("depth", [100, 300, 1000, 1900])
def test_deep_nesting_is_rejected_not_a_crash(opener: str, closer: str, depth: int) -> None:
    """Python's JSON parser gives up at about 1000 levels (RecursionError), within 4096 bytes."""
    nested = opener * depth + "1" + closer * depth
    payload = json.dumps({**heartbeat(), "extra": "@"}).replace('"@"', nested).encode()
    decoded = decode_or_reject(MessageKind.HEARTBEAT, payload)
    if depth >= 1000:
        assert isinstance(decoded, Rejection), decoded
        assert decoded.reason in {"invalid_json", "oversized"}


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
    decoded = decode_or_reject(MessageKind.ALARM, json.dumps({**alarm(), "ts": ts}).encode())
    assert isinstance(decoded, Alarm) is accepted, decoded
