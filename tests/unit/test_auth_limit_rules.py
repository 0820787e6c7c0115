"""The failed-authentication limiter on a manual clock: each address's bucket refills at the set
rate, a full bucket is forgotten, and the addresses held are bounded (the oldest failure goes
first). The limit on the running API is tests/integration/test_auth_limit.py.
"""

from __future__ import annotations

from telecare.api.auth_limit import FailedAuthLimiter


def test_the_bucket_refills_and_forgets_addresses() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(burst=2, per_minute=6, max_addresses=3)
    limiter._now = lambda: now[0]  # a manual clock
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 10  # one attempt every 10 s
    now[0] = 10
    assert limiter.retry_after("a") == 0
    now[0] = 20
    assert limiter.retry_after("a") == 0
    assert len(limiter) == 0, "a refilled bucket is forgotten"
    for address in "bcde":
        limiter.failed(address)
    assert len(limiter) == 3, "bounded: the oldest failure is forgotten first"
    assert limiter.retry_after("b") == 0
