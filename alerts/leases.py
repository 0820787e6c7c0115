"""Partition leases: several engine processes share the fleet, each partition owned by one.

Every process renews its leases every third of ENGINE_LEASE_S and takes its fair share of the
64 partitions (ceil(64 / processes alive)): it releases what it holds above its share, and
claims expired or free partitions below it. A process that dies stops renewing; its leases
expire after ENGINE_LEASE_S and the others claim them, loading those devices from the database.
A clean shutdown releases everything at once, so a planned restart hands over in a moment.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import uuid
from dataclasses import dataclass

from telecare.db.pool import Pool

log = logging.getLogger(__name__)

PARTITIONS = 64

_SEEN = """
INSERT INTO engine_members (owner) VALUES (%(owner)s)
ON CONFLICT (owner) DO UPDATE SET seen_at = now()
"""
_FORGET_DEAD = """
DELETE FROM engine_members WHERE seen_at < now() - make_interval(secs => %(lease_s)s)
"""
_ALIVE = "SELECT count(*) FROM engine_members"
_RENEW = """
UPDATE engine_leases SET expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE owner = %(owner)s AND expires_at > now()
RETURNING partition
"""
_RELEASE = """
UPDATE engine_leases SET owner = NULL, expires_at = '-infinity'
WHERE owner = %(owner)s AND partition = ANY(%(partitions)s)
"""
_CLAIM = """
UPDATE engine_leases SET owner = %(owner)s, taken_at = now(),
       expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE partition IN (SELECT partition FROM engine_leases
                    WHERE expires_at <= now() OR owner IS NULL
                    ORDER BY partition LIMIT %(wanted)s FOR UPDATE SKIP LOCKED)
RETURNING partition
"""
_LEAVE = """
WITH released AS (
    UPDATE engine_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = %(owner)s
)
DELETE FROM engine_members WHERE owner = %(owner)s
"""


@dataclass(frozen=True)
class LeaseChange:
    gained: frozenset[int]
    lost: frozenset[int]
    held: frozenset[int]
    processes: int


def partition_of(device_id: str) -> int:
    """The partition of a device; the same as the stored `devices.engine_partition`."""
    return hashlib.md5(device_id.encode()).digest()[0] % PARTITIONS  # noqa: S324 - not security


def new_owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class PartitionLeases:
    def __init__(self, pool: Pool, *, lease_s: float, owner: str | None = None) -> None:
        self._pool = pool
        self.lease_s = lease_s
        self.owner = owner or new_owner_name()
        self.held: frozenset[int] = frozenset()

    async def renew(self) -> LeaseChange:
        """One round: renew, then give up or claim partitions towards this process's share."""
        params: dict[str, object] = {"owner": self.owner, "lease_s": self.lease_s}
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(_SEEN, params)
            await conn.execute(_FORGET_DEAD, params)
            cur = await conn.execute(_ALIVE)
            row = await cur.fetchone()
            processes = max(1, row[0] if row else 1)
            share = math.ceil(PARTITIONS / processes)
            cur = await conn.execute(_RENEW, params)
            held = {r[0] for r in await cur.fetchall()}
            if len(held) > share:
                extra = sorted(held - {0}, reverse=True)[: len(held) - share]
                await conn.execute(_RELEASE, {**params, "partitions": extra})
                held -= set(extra)
            elif len(held) < share:
                cur = await conn.execute(_CLAIM, {**params, "wanted": share - len(held)})
                held |= {r[0] for r in await cur.fetchall()}
        before, self.held = self.held, frozenset(held)
        change = LeaseChange(self.held - before, before - self.held, self.held, processes)
        if change.gained or change.lost:
            log.info(
                "engine partitions changed owner=%s gained=%d lost=%d held=%d processes=%d",
                self.owner,
                len(change.gained),
                len(change.lost),
                len(self.held),
                processes,
            )
        return change

    async def leave(self) -> None:
        """Release every lease now (a clean shutdown): the others take over at their next round."""
        async with self._pool.connection(timeout=5) as conn:
            await conn.execute(_LEAVE, {"owner": self.owner})
        self.held = frozenset()
