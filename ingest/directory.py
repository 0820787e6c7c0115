"""Which devices are registered: an in-memory set kept fresh by LISTEN/NOTIFY."""

from __future__ import annotations

import logging
import sys
import time

from telecare.db.pool import Pool

log = logging.getLogger(__name__)

# How long "not registered" is believed before the database is asked again.
NEGATIVE_TTL_S = 5.0


class DeviceDirectory:
    """Answers "is this device registered?" without a query per message."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._active: set[str] = set()
        self._decommissioned: set[str] = set()
        self._unknown_until: dict[str, float] = {}
        self._last_msg_id: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._active)

    async def reload(self) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT device_id FROM devices WHERE decommissioned_at IS NULL"
            )
            self._active = {sys.intern(row[0]) for row in await cur.fetchall()}
        self._decommissioned.clear()
        self._unknown_until.clear()
        log.info("device directory loaded devices=%d", len(self._active))

    async def refresh(self, device_id: str) -> None:
        """Re-read one device after a change notification."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT decommissioned_at IS NULL FROM devices WHERE device_id = %s", [device_id]
            )
            row = await cur.fetchone()
        if row is not None and not row[0]:
            self._decommissioned.add(device_id)
        else:
            self._decommissioned.discard(device_id)
        self._set(device_id, active=row is not None and bool(row[0]))

    def refusal(self, device_id: str) -> tuple[str, str]:
        """Why a message of a device that is not active is refused: (reason, detail)."""
        if device_id in self._decommissioned:
            return "decommissioned_device", f"device {device_id!r} is decommissioned"
        return "unregistered_device", f"device {device_id!r} is not registered"

    def known(self, device_id: str) -> bool | None:
        """True or False when the answer is certain from memory, None when it must be looked up."""
        if device_id in self._active:
            return True
        until = self._unknown_until.get(device_id)
        if until is not None and until > time.monotonic():
            return False
        return None

    async def is_registered(self, device_id: str) -> bool:
        known = self.known(device_id)
        if known is not None:
            return known
        await self.refresh(device_id)
        return device_id in self._active

    def is_repeat(self, device_id: str, msg_id: str) -> bool:
        """True when this heartbeat msg_id is the one last seen from the device (a redelivery)."""
        if self._last_msg_id.get(device_id) == msg_id:
            return True
        self._last_msg_id[device_id] = msg_id
        return False

    def _set(self, device_id: str, *, active: bool) -> None:
        if active:
            self._active.add(device_id)
            self._unknown_until.pop(device_id, None)
        else:
            self._active.discard(device_id)
            self._last_msg_id.pop(device_id, None)
            self._unknown_until[device_id] = time.monotonic() + NEGATIVE_TTL_S
            if len(self._unknown_until) > 100_000:
                self._prune_unknown()

    def _prune_unknown(self) -> None:
        now = time.monotonic()
        self._unknown_until = {d: t for d, t in self._unknown_until.items() if t > now}
