"""The small pieces a virtual hub is made of: who it is, its peripherals, its unacked alarms."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from telecare.core.mqtt_url import BrokerAddress
from telecare.protocol.messages import AlarmEvent
from telecare.simulators.scenario import Group
from telecare.simulators.scenario_errors import ScenarioError


@dataclass(frozen=True)
class HubIdentity:
    """A registered (or attached) device and the scenario group it plays in.

    With a certificate (`cert_file`, `key_file`) the device proves who it is at the TLS
    handshake and sends neither username nor password: the production broker takes its
    identity from the certificate (deploy/mosquitto/production.conf). `ca_file` is the broker
    CA its registration handed out; without one, the run's (TELECARE_MQTT_CA_FILE)."""

    device_id: str
    password: str | None
    group: Group
    network: str
    interval_s: int  # as registered: what the backend expects
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None

    def address(self, broker: BrokerAddress) -> BrokerAddress:
        """Where and how this device connects: the run's broker, with its certificate if any."""
        if self.cert_file is None:
            return broker
        if not broker.tls:
            raise ScenarioError(
                f"{self.device_id} has a device certificate: connect to the broker's TLS "
                f"device listener (--mqtt-url mqtts://HOST:8883), not mqtt://{broker.host}"
                f":{broker.port}"
            )
        return replace(
            broker,
            username=None,
            password=None,
            cert_file=self.cert_file,
            key_file=self.key_file,
            ca_file=self.ca_file or broker.ca_file,
        )

    @property
    def username(self) -> str | None:
        """The CONNECT username: the device id, but for a certificate, which says it already."""
        return None if self.cert_file is not None else self.device_id


@dataclass
class PendingAlarm:
    """An alarm the backend has not acknowledged yet: re-sent with the same msg_id until it is."""

    msg_id: str
    event: AlarmEvent
    seq: int
    due: float
    attempts: int = 0


@dataclass
class PeripheralState:
    """A radio peripheral the hub supervises; `lost_since` is set while the hub cannot hear it."""

    id: str
    kind: str
    battery_pct: int | None
    lost_since: float | None = None
    _jitter_s: int = 0

    def __post_init__(self) -> None:
        self._jitter_s = random.randrange(5)  # noqa: S311 - a heard peripheral checked in lately

    def wire(self, now: float) -> dict[str, Any]:
        """The heartbeat's entry for this peripheral; last_seen_s in real seconds."""
        seen_s = self._jitter_s if self.lost_since is None else int(now - self.lost_since)
        return {
            "id": self.id,
            "kind": self.kind,
            "battery_pct": self.battery_pct,
            "last_seen_s": seen_s,
        }
