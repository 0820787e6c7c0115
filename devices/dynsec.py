"""Per-device broker clients in Mosquitto's dynamic-security plugin, over its control topic.

Each device gets a role `telecare-device-{id}` (Mosquitto 2.0's dynamic security has no
%c/%u patterns, so one role per device) and a client with username = client id = device id:

- publishClientSend `telecare/v1/{id}/#`: heartbeats, alarms, status and its Last Will;
- subscribeLiteral and publishClientReceive `telecare/v1/{id}/ack`: its own acks, nothing else.

Commands go to `$CONTROL/dynamic-security/v1` in batches (one message carries several
commands); the plugin answers on `.../response` to this client only. Mosquitto 2.0 rewrites its
whole JSON file after every changing command, even within one message, and the broker serves
nobody else meanwhile: a batch costs time in proportion to the clients already stored, times
its commands. So batches stay small (`COMMANDS_PER_MESSAGE`): larger ones save nothing but
round trips and would hold alarms up for longer. Figures and limits: docs/REGISTRY.md.

The control connection is a clean session of the lean client (mqtt/subscription.py): it
reconnects with back-off, a broker that refuses the response topic (SUBACK 0x80) is a failed
connection, and a request waiting for its answer fails at once when the connection is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.devices.credentials import DeviceSecret
from telecare.devices.errors import BrokerUnavailable
from telecare.mqtt.client import MqttConnection, MqttError
from telecare.mqtt.subscription import Subscription
from telecare.protocol.messages import TOPIC_ROOT

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
COMMANDS_PER_MESSAGE = 20

Command = dict[str, Any]


def role_name(device_id: str) -> str:
    return f"telecare-device-{device_id}"


def device_acls(device_id: str) -> list[Command]:
    """Device ids cannot hold `/`, `+` or `#` (docs/PROTOCOL.md section 2), so these stay
    literal."""
    base = f"{TOPIC_ROOT}/{device_id}"
    return [
        {"acltype": "publishClientSend", "topic": f"{base}/#", "allow": True},
        {"acltype": "subscribeLiteral", "topic": f"{base}/ack", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{base}/ack", "allow": True},
    ]


def _create(secret: DeviceSecret) -> list[Command]:
    device_id = secret.device_id
    return [
        {"command": "createRole", "rolename": role_name(device_id), "acls": device_acls(device_id)},
        {
            "command": "createClient",
            "username": device_id,
            "clientid": device_id,
            "password": secret.password,
            "roles": [{"rolename": role_name(device_id)}],
        },
    ]


def _repair(secret: DeviceSecret) -> list[Command]:
    """For a client left by an earlier attempt: the new password, its id and its role.

    The role is removed first (whether it was there or not): Mosquitto 2.0.11 answers
    "Internal error" when adding a role a client already has. Answers: see `_REPAIR_CHECKED`.
    """
    device_id, role = secret.device_id, role_name(secret.device_id)
    return [
        {"command": "setClientPassword", "username": device_id, "password": secret.password},
        {"command": "setClientId", "username": device_id, "clientid": device_id},
        {"command": "removeClientRole", "username": device_id, "rolename": role},
        {"command": "addClientRole", "username": device_id, "rolename": role},
    ]


_REPAIR_CHECKED = (0, 1, 3)  # the answer of removeClientRole does not matter


class DynsecCredentials:
    """Implements BrokerCredentials; `run()` keeps the control connection up until cancelled."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._metrics = metrics
        self._broker = settings.broker()
        self._timeout_s = settings.broker_control_timeout_s
        self._pending: dict[str, asyncio.Future[list[Command]]] = {}
        self._ids = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]
        self._control = Subscription(
            self._broker,
            name="dynamic-security",
            identifier=f"telecare-dynsec-{self._session}",
            filters=[(RESPONSE_TOPIC, 1)],
            on_message=self._on_message,
            clean_session=True,
            on_connected=self._on_connected,
        )
        self.connected = self._control.connected

    def ready(self) -> bool:
        return self.connected.is_set()

    async def add(self, devices: Sequence[DeviceSecret]) -> Mapping[str, str]:
        commands = [c for secret in devices for c in _create(secret)]
        responses = await self._execute(commands)
        refused: dict[str, str] = {}
        to_repair: list[DeviceSecret] = []
        for secret, (role, client) in zip(devices, _chunks(responses, 2), strict=True):
            role_error = role.get("error")
            if role_error and role_error != "Role already exists":
                refused[secret.device_id] = role_error
            elif client.get("error") == "Client already exists":
                to_repair.append(secret)
            elif client.get("error"):
                refused[secret.device_id] = client["error"]
        if to_repair:
            repaired = await self._execute([c for s in to_repair for c in _repair(s)])
            for secret, answers in zip(to_repair, _chunks(repaired, 4), strict=True):
                errors = [answers[i]["error"] for i in _REPAIR_CHECKED if _is_error(answers[i])]
                if errors:
                    refused[secret.device_id] = "; ".join(errors)
        return refused

    async def set_password(self, device_id: str, password: str) -> None:
        command = {"command": "setClientPassword", "username": device_id, "password": password}
        [answer] = await self._execute([command])
        if answer.get("error") == "Client not found":  # lost by the broker: make it again
            refused = await self.add([DeviceSecret(device_id, password)])
            if refused:
                raise BrokerUnavailable(f"broker refused device {device_id!r}: {refused}")
        elif answer.get("error"):
            raise BrokerUnavailable(f"broker refused the new password: {answer['error']}")

    async def remove(self, device_id: str) -> None:
        answers = await self._execute(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": role_name(device_id)},
            ]
        )
        errors = [a["error"] for a in answers if _is_error(a, "Client not found", "Role not found")]
        if errors:
            raise BrokerUnavailable(f"broker refused to remove {device_id!r}: {errors}")

    async def _execute(self, commands: list[Command]) -> list[Command]:
        responses: list[Command] = []
        for start in range(0, len(commands), COMMANDS_PER_MESSAGE):
            responses += await self._request(commands[start : start + COMMANDS_PER_MESSAGE])
        return responses

    async def _request(self, commands: list[Command]) -> list[Command]:
        started = time.perf_counter()
        try:
            responses = await self._exchange(commands)
        except BrokerUnavailable as exc:
            self._metrics.broker_control_failures.inc()
            log.warning("dynamic-security commands=%d not confirmed: %s", len(commands), exc)
            raise
        self._metrics.broker_control_seconds.observe(time.perf_counter() - started)
        return responses

    async def _exchange(self, commands: list[Command]) -> list[Command]:
        if not self.connected.is_set():
            raise BrokerUnavailable("not connected to the broker's dynamic-security control topic")
        request_id = f"{self._session}-{next(self._ids)}"
        tagged = [{**c, "correlationData": f"{request_id}:{i}"} for i, c in enumerate(commands)]
        answer: asyncio.Future[list[Command]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._control.publish(
                    CONTROL_TOPIC, json.dumps({"commands": tagged}).encode()
                )
                responses = await answer
        except (TimeoutError, MqttError) as exc:
            raise BrokerUnavailable(
                f"the broker did not answer {len(commands)} dynamic-security commands"
                f" within {self._timeout_s:g} s ({type(exc).__name__})"
            ) from exc
        finally:
            self._pending.pop(request_id, None)
        if len(responses) != len(commands):
            raise BrokerUnavailable(f"{len(responses)} answers to {len(commands)} commands")
        return responses

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            responses = json.loads(payload)["responses"]
            request_id = str(responses[0]["correlationData"]).split(":")[0]
        except (ValueError, KeyError, IndexError, TypeError):
            log.warning("unreadable dynamic-security response payload=%r", payload[:200])
            return
        waiting = self._pending.get(request_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(responses)

    async def run(self) -> None:
        """Connect, listen for answers and reconnect with back-off, until cancelled."""
        await self._control.run()

    def _on_connected(self, conn: MqttConnection) -> None:
        log.info("dynamic-security control connected host=%s", self._broker.host)
        conn.closed.add_done_callback(lambda _: self._disconnected())

    def _disconnected(self) -> None:
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(BrokerUnavailable("lost the broker connection"))


def _is_error(answer: Command, *harmless: str) -> bool:
    error = answer.get("error")
    return bool(error) and error not in harmless


def _chunks(responses: list[Command], size: int) -> list[list[Command]]:
    return [responses[i : i + size] for i in range(0, len(responses), size)]
