"""What can go wrong with a device request; api/ turns these into HTTP errors."""

from __future__ import annotations

from collections.abc import Sequence


class DeviceNotFound(LookupError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is not registered")
        self.device_id = device_id


class DeviceAlreadyRegistered(ValueError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is already registered")
        self.device_id = device_id


class DeviceDecommissioned(ValueError):
    """The device was decommissioned: it is kept for its history but cannot be changed."""

    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is decommissioned: it can no longer be changed")
        self.device_id = device_id


class InvalidStageTransition(ValueError):
    def __init__(self, device_id: str, from_stage: str, to_stage: str, allowed: Sequence[str]):
        to = ", ".join(allowed) or "nothing (final stage)"
        super().__init__(
            f"device {device_id!r} is {from_stage!r}: it cannot move to {to_stage!r}"
            f" (from {from_stage!r} it may move to {to})"
        )
        self.device_id = device_id
        self.from_stage = from_stage
        self.to_stage = to_stage


class MissingEvidence(ValueError):
    """`verifying` -> `complete` without the evidence that the digital path works."""

    def __init__(self, device_id: str, missing: Sequence[str]) -> None:
        super().__init__(
            f"device {device_id!r} cannot be marked complete yet: " + "; ".join(missing)
        )
        self.device_id = device_id
        self.missing = list(missing)


class CredentialUnavailable(ValueError):
    """The deployment offers no credential of the kind asked for (`credential` field)."""


class NotACertificateDevice(ValueError):
    def __init__(self, device_id: str) -> None:
        super().__init__(
            f"device {device_id!r} proves who it is with a password, not a certificate"
        )
        self.device_id = device_id


class NoActiveCertificate(ValueError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} has no certificate in use to revoke")
        self.device_id = device_id


class BrokerUnavailable(RuntimeError):
    """The broker did not confirm a credential change: the database change is rolled back."""
