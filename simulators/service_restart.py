"""`--restart-command`: how a scenario's `restart` event restarts the service under test.

The simulator does not own the service, so the operator says how: a shell command that stops it
(SIGTERM or SIGKILL, as `TELECARE_RESTART_MODE` says), keeps it down `TELECARE_RESTART_DOWN_S`
seconds and starts it again, e.g. `systemctl kill -s $TELECARE_RESTART_MODE telecare; sleep
$TELECARE_RESTART_DOWN_S; systemctl start telecare`. The restart is over when /healthz answers
200 again; both waits are bounded, and a failure is reported as the run's error.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx

from telecare.simulators.player import RestartService

COMMAND_TIMEOUT_S = 300.0
HEALTHY_WITHIN_S = 120.0


def restart_by_command(command: str, api_url: str | None) -> RestartService:
    async def restart(mode: str, down_s: float) -> None:
        env = {
            **os.environ,
            "TELECARE_RESTART_MODE": mode,
            "TELECARE_RESTART_DOWN_S": f"{down_s:g}",
        }
        process = await asyncio.create_subprocess_exec("/bin/sh", "-c", command, env=env)
        try:
            code = await asyncio.wait_for(process.wait(), COMMAND_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(
                f"--restart-command still running after {COMMAND_TIMEOUT_S:g} s"
            ) from None
        if code != 0:
            raise RuntimeError(f"--restart-command exited {code}")
        if api_url is not None:
            await until_healthy(api_url, HEALTHY_WITHIN_S)

    return restart


async def until_healthy(api_url: str, within_s: float) -> None:
    """Until GET /healthz answers 200, or RuntimeError after `within_s`."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get("/healthz")).status_code == httpx.codes.OK:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the service did not answer /healthz within {within_s:g} s of restarting")
