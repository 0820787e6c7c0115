"""Failed authentication is rate-limited per client address: a token bucket, in memory.

Each address may fail `burst` times in a row, and earns one more attempt every
`60 / per_minute` seconds. An address with no attempt left gets 429 with `Retry-After` for
every request with a token, valid or not, until it has earned one: answering a valid token
normally would let a guesser tell a hit from a miss at full speed. Successful
authentications cost nothing. Behind a reverse proxy the address is the client's, from
`X-Forwarded-For` as uvicorn accepts it from TELECARE_FORWARDED_ALLOW_IPS (docs/OPERATIONS.md).

Memory is bounded: an address whose bucket has refilled is forgotten, and past `max_addresses`
the addresses that failed longest ago are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailedAuthLimiter:
    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        max_addresses: int = 100_000,
    ) -> None:
        self._burst = burst
        self._refill_per_s = per_minute / 60
        self._max_addresses = max_addresses
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._now = time.monotonic

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again; 0 when it may try now."""
        bucket = self._refilled(address)
        if bucket is None or bucket.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self._refill_per_s))

    def failed(self, address: str) -> None:
        bucket = self._refilled(address) or _Bucket(float(self._burst), self._now())
        bucket.tokens = max(0.0, bucket.tokens - 1)
        self._buckets[address] = bucket
        self._buckets.move_to_end(address)
        while len(self._buckets) > self._max_addresses:
            self._buckets.popitem(last=False)

    def _refilled(self, address: str) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        now = self._now()
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._refill_per_s)
        bucket.at = now
        if bucket.tokens >= self._burst:
            del self._buckets[address]  # a full bucket is the same as none
            return None
        return bucket
