"""What can go wrong with a device request; api/ turns these into HTTP errors."""

from __future__ import annotations


class DeviceNotFound(LookupError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is not registered")
        self.device_id = device_id


class DeviceAlreadyRegistered(ValueError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is already registered")
        self.device_id = device_id
