"""Exponential back-off with jitter and a cap, for reconnect loops."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, cap_s: float = 30.0) -> float:
    """Seconds to wait before reconnect attempt number `attempt` (1-based)."""
    return min(cap_s, random.uniform(0, 1.5 ** min(10, attempt)))  # noqa: S311 - jitter, not crypto
