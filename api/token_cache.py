"""Tokens that authenticated a moment ago, remembered so a request costs no token query.

Under load the token lookup was a database round trip per request (BENCHMARKS.md, API under
load). A token is remembered for `ttl_s` after it last authenticated against the database. A
revocation reaches every API process at once: `revoke_token` sends a notification in its
transaction and each process's cache forgets that token when it arrives. While the cache's
LISTEN connection is down it remembers nothing (every request asks the database), and it
forgets everything when the connection is back, since a revocation may have been missed.
"""

from __future__ import annotations

import time

from telecare.api.tokens import TOKEN_REVOKED, Principal
from telecare.db.notifications import follow

DEFAULT_TTL_S = 30.0


class TokenCache:
    """Principals by token digest; `run()` follows revocations (until then nothing is kept)."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._principals: dict[str, tuple[Principal, float]] = {}
        self._listening = False

    def __len__(self) -> int:
        return len(self._principals)

    def get(self, digest: str) -> Principal | None:
        entry = self._principals.get(digest)
        if entry is None:
            return None
        principal, until = entry
        if until < time.monotonic():
            del self._principals[digest]
            return None
        return principal

    def put(self, digest: str, principal: Principal) -> None:
        if self._listening:
            self._principals[digest] = (principal, time.monotonic() + self._ttl_s)

    def revoked(self, token_id: int) -> None:
        for digest, (principal, _) in list(self._principals.items()):
            if principal.token_id == token_id:
                del self._principals[digest]

    async def run(self, database_url: str) -> None:
        await follow(
            database_url,
            TOKEN_REVOKED,
            self._notified,
            on_connected=self._connected,
            on_lost=self._lost,
        )

    async def _notified(self, payload: str) -> None:
        self.revoked(int(payload))

    async def _connected(self) -> None:
        self._principals.clear()
        self._listening = True

    def _lost(self) -> None:
        self._listening = False
        self._principals.clear()
