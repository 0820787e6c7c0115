"""Misbehaving devices and intruders: what the backend must refuse, and what only a broker can.

Each kind sends one message and writes down what a correct system shows for it. With an open
(development) broker every message reaches the backend; with per-device credentials (passwords
of the dynamic-security plugin, or the production broker's device certificates) the broker
itself refuses some (column "ACL").

| kind | sent | backend shows | ACL |
| --- | --- | --- | --- |
| invalid_json | `{not json` as a heartbeat | quarantine `invalid_json` | the same |
| oversized | a 5,000-byte heartbeat | quarantine `oversized` | the same |
| wrong_type | a heartbeat with `seq: "seven"` | quarantine `schema` | the same |
| bad_topic | a heartbeat on `.../firmware` | quarantine `bad_topic` | may be refused |
| unregistered | a heartbeat from an unknown id | quarantine `unregistered_device` | refused |
| spoof | a `test` alarm under another id | stored: expected to miss | dropped (stored: a failure) |

The unregistered client offers what a fleet like the run's would: no password (a password
fleet), or a certificate it signed itself (a certificate fleet): the device listener trusts
only the deployment's device CA, so the handshake fails. The spoof goes out on the sender's own
connection, certificate and all: the broker's ACL confines it to its own topics and drops it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttError, connect
from telecare.protocol.messages import MessageKind, topic_for
from telecare.simulators.certificates import self_signed
from telecare.simulators.hub import Hub
from telecare.simulators.timeline import Timeline

log = logging.getLogger(__name__)

OPEN = "open"
ACL = "acl"


def _heartbeat(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "msg_id": f"bad{time.monotonic_ns():x}",
        "ts": datetime.now(UTC).isoformat(),
        "seq": 1,
        "interval_s": 60,
        "power": "mains",
        "battery_pct": 90,
        "signal_dbm": -70,
        "network": "4g",
    }
    body.update(overrides)
    return json.dumps(body).encode()


async def detect_broker_mode(broker: BrokerAddress, some_device: str | None) -> str:
    """`acl` when the broker refuses an anonymous client and a wrong password, else `open`.

    A production broker refuses both at the TLS handshake: its device listener requires a
    client certificate of the device CA, and the probe offers none."""
    attempts: list[tuple[str | None, str | None]] = [(None, None)]
    if some_device is not None:
        attempts.append((some_device, "not-the-password"))
    probe = replace(broker, cert_file=None, key_file=None)
    for username, password in attempts:
        try:
            conn = await connect(
                probe,
                client_id=f"sim-probe-{time.monotonic_ns():x}"[:23],
                username=username,
                password=password,
                timeout_s=10,
            )
        except MqttError:
            continue
        await conn.disconnect()
        return OPEN
    return ACL


@dataclass
class BadActor:
    broker: BrokerAddress
    timeline: Timeline
    mode: str
    prefix: str

    async def act(self, kind: str, sender: Hub, victim: Hub | None) -> None:
        own = sender.device_id
        open_mode = self.mode == OPEN
        if kind == "invalid_json":
            self._send(sender, topic_for(own, MessageKind.HEARTBEAT), b"{not json", "invalid_json")
        elif kind == "oversized":
            payload = _heartbeat(firmware_notes="x" * 5000)
            self._send(sender, topic_for(own, MessageKind.HEARTBEAT), payload, "oversized")
        elif kind == "wrong_type":
            payload = _heartbeat(seq="seven", battery_pct="high")
            self._send(sender, topic_for(own, MessageKind.HEARTBEAT), payload, "schema")
        elif kind == "bad_topic":
            self._send(
                sender, f"telecare/v1/{own}/firmware", _heartbeat(), "bad_topic", required=open_mode
            )
        elif kind == "unregistered":
            await self._unregistered(sender, required=open_mode)
        elif kind == "spoof" and victim is not None:
            self._spoof(sender, victim, dropped=not open_mode)

    def _send(
        self, hub: Hub, topic: str, payload: bytes, reason: str, *, required: bool = True
    ) -> None:
        if not hub.send_raw(topic, payload):
            log.warning("bad actor could not send (hub down) device=%s", hub.device_id)
            return
        self.timeline.expect_quarantine(topic, reason, required=required, why="bad actor")

    async def _unregistered(self, sender: Hub, *, required: bool) -> None:
        ghost = f"{self.prefix}-ghost-{time.monotonic_ns() % 100000:05d}"
        topic = topic_for(ghost, MessageKind.HEARTBEAT)
        with tempfile.TemporaryDirectory(prefix="telecare-sim-ghost-") as folder:
            if sender.broker.cert_file is not None:
                credential = "self-signed certificate"
                cert_file, key_file = self_signed(ghost, Path(folder))
                address = replace(sender.broker, cert_file=str(cert_file), key_file=str(key_file))
                username = None
            else:
                credential, address, username = "no password", self.broker, ghost
            try:
                conn = await connect(address, client_id=ghost, username=username, timeout_s=10)
            except MqttError as exc:
                log.info("unregistered device refused by the broker device=%s error=%s", ghost, exc)
                self.timeline.record_intruder(ghost, credential, accepted=False, error=str(exc))
                return
        self.timeline.record_intruder(ghost, credential, accepted=True)
        try:
            self.timeline.expect_quarantine(
                topic, "unregistered_device", required=required, why="never registered"
            )
            await conn.publish(topic, _heartbeat())
        finally:
            await conn.disconnect()

    def _spoof(self, sender: Hub, victim: Hub, *, dropped: bool) -> None:
        msg_id = f"spoof{time.monotonic_ns():x}"[:64]
        body = {
            "msg_id": msg_id,
            "ts": datetime.now(UTC).isoformat(),
            "seq": 1,
            "event": "test",
            "detail": f"spoofed by {sender.device_id}",
        }
        if sender.send_raw(
            topic_for(victim.device_id, MessageKind.ALARM), json.dumps(body).encode()
        ):
            self.timeline.record_spoof(
                victim.device_id, sender.device_id, msg_id, "alarm", dropped=dropped
            )
