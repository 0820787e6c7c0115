"""Where device passwords are enforced: the broker's own client list, kept in step with ours.

The database is the source of truth. Every change that creates, rotates or removes a device's
password calls the broker inside the database transaction, before the commit: if the broker
does not confirm, the call raises `BrokerUnavailable`, the transaction rolls back and the API
answers 503, so a device is never registered (or rotated) in one place and not the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DeviceSecret:
    device_id: str
    password: str


class BrokerCredentials(Protocol):
    async def add(self, devices: Sequence[DeviceSecret]) -> Mapping[str, str]:
        """Create (or repair) each device's broker client; the refused ones, with the reason.

        Raises BrokerUnavailable when the broker cannot be asked or does not answer.
        """

    async def set_password(self, device_id: str, password: str) -> None:
        """Replace the device's password (its open connection is closed by the broker)."""

    async def remove(self, device_id: str) -> None:
        """Delete the device's broker client (disconnecting it); absent already is fine."""

    def ready(self) -> bool:
        """Whether credential changes can be made now."""


class NoBrokerCredentials:
    """Development: a broker without the plugin, where devices connect anonymously."""

    async def add(self, devices: Sequence[DeviceSecret]) -> Mapping[str, str]:
        return {}

    async def set_password(self, device_id: str, password: str) -> None:
        return None

    async def remove(self, device_id: str) -> None:
        return None

    def ready(self) -> bool:
        return True
