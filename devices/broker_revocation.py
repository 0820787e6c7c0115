"""Making a revocation bite at the broker: reload its revocation list, close the open connection.

Mosquitto checks the device CRL only during a TLS handshake, and rereads it only on a reload
(SIGHUP), which drops no connection. So once the new list is written, `reload_broker` has the
broker reread it (refusing the revoked certificate from then on), and `disconnect_device`
closes the connection the device already has: it connects on the service listener with the
device's id as its client id, which makes the broker end the device's connection (an MQTT
session takeover), and disconnects at once. The service identity needs no topic for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttError, connect

log = logging.getLogger(__name__)

# What an error message quotes of the command's output (its end: where the reason usually is).
_OUTPUT_QUOTED = 500


class BrokerReloadFailed(RuntimeError):
    """The reload command failed or did not finish in time: the new list is not in force."""


class DisconnectFailed(RuntimeError):
    """The revoked device's open connection could not be closed (the broker could not be
    reached as the service, or refused the connection)."""

    def __init__(self, device_id: str, why: str) -> None:
        super().__init__(f"could not disconnect device {device_id!r} at the broker: {why}")
        self.device_id = device_id


async def reload_broker(command: str | None, timeout_s: float) -> None:
    """Run the operator's reload command (TELECARE_BROKER_RELOAD_COMMAND) through the shell.

    None does nothing: a broker nobody reloads keeps the list it read at its start. A command
    that runs past `timeout_s` is killed with whatever it started (its process group).
    """
    if command is None:
        return
    # The command is the operator's own configuration, run as written (pipes, sudo, ...).
    process = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            output, _ = await process.communicate()
    except BaseException as exc:  # timed out or cancelled: leave no process behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise BrokerReloadFailed(
                f"broker reload command did not finish within {timeout_s:g} s: {command}"
            ) from None
        raise
    if process.returncode != 0:
        said = output.decode(errors="replace").strip()[-_OUTPUT_QUOTED:]
        raise BrokerReloadFailed(
            f"broker reload command exited with {process.returncode}: {command}"
            + (f": {said}" if said else "")
        )
    log.info("broker reloaded command=%r", command)


async def disconnect_device(broker: BrokerAddress, device_id: str, timeout_s: float) -> None:
    """Close the device's connection, if it has one, by taking its client id over.

    `broker` is the service listener, with this service's certificate. A clean session is
    asked for, so the device's session (and what it queued) goes with its connection.
    """
    try:
        async with asyncio.timeout(timeout_s):
            connection = await connect(
                broker, client_id=device_id, clean_session=True, timeout_s=timeout_s
            )
            await connection.disconnect()
    except TimeoutError:
        raise DisconnectFailed(device_id, f"no answer within {timeout_s:g} s") from None
    except MqttError as exc:
        raise DisconnectFailed(device_id, str(exc)) from exc
