"""Plays a scenario's events against the running hubs, each at its time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from telecare.protocol.messages import AlarmEvent
from telecare.simulators.api_client import Api
from telecare.simulators.bad_actors import BadActor
from telecare.simulators.hub import Hub
from telecare.simulators.scenario_events import Action, Do, DropMode
from telecare.simulators.timeline import Timeline

log = logging.getLogger(__name__)

API_CONCURRENCY = 16

# Stops the service (mode `term` or `kill`), keeps it down `down_s` seconds, starts it again and
# returns once it answers /healthz: `--restart-command`, or a test's own process control.
RestartService = Callable[[str, float], Awaitable[None]]


class Player:
    def __init__(
        self,
        hubs: dict[str, list[Hub]],
        timeline: Timeline,
        api: Api | None,
        bad_actor: BadActor | None,
        operator: Api | None = None,
        restart: RestartService | None = None,
    ) -> None:
        self._hubs = hubs
        self._restart = restart
        # One restart at a time, and none cut short by the end of the run: a restart that
        # outlasts the next one's time, or the scenario, would leave the service stopped.
        self._restarting = asyncio.Lock()
        self._timeline = timeline
        self._api = api
        self._operator = operator
        self._bad_actor = bad_actor
        self.errors: list[str] = []

    async def play(self, actions: Sequence[Action], t0: float) -> None:
        """Apply every action at `t0 + at_s` (monotonic), in order.

        An action with `stagger_s` reaches its devices one at a time, `stagger_s` apart, in the
        background, so the next action is not held up.
        """
        async with asyncio.TaskGroup() as tg:
            for n, action in enumerate(actions):
                delay = t0 + action.at_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if action.do is Do.RESTART:  # in the background: devices act while it is down
                    tg.create_task(
                        self._restart_service(str(action.params["mode"]), action.params["down_s"]),
                        name=f"simulate.restart[{n}]",
                    )
                    continue
                group = self._hubs[action.group]
                chosen = [group[i] for i in action.select(len(group))]
                log.info(
                    "scenario step do=%s group=%s devices=%d", action.do, action.group, len(chosen)
                )
                stagger_s = float(action.params.get("stagger_s", 0))
                if stagger_s and len(chosen) > 1:
                    tg.create_task(
                        self._staggered(action, chosen, group, stagger_s),
                        name=f"simulate.step[{n}]",
                    )
                else:
                    await self._apply(action, chosen, group)

    async def _staggered(
        self, action: Action, chosen: list[Hub], group: list[Hub], stagger_s: float
    ) -> None:
        for index, hub in enumerate(chosen):
            if index:
                await asyncio.sleep(stagger_s)
            await self._apply(action, [hub], group)

    async def _apply(self, action: Action, chosen: list[Hub], group: list[Hub]) -> None:
        p = action.params
        if action.do is Do.ALARM:
            await self._alarms(chosen, p["event"], p["times"], p["gap_s"])
        elif action.do is Do.STAGE:
            await self._stages(chosen, str(p["stage"]))
        elif action.do is Do.BAD:
            await self._bad(chosen, group, p["kinds"])
        elif action.do is Do.OPERATOR_ACK:
            await self._operator_acks(chosen, p.get("event"))
        else:
            for hub in chosen:
                _steer(hub, action)

    async def _restart_service(self, mode: str, down_s: float) -> None:
        if self._restart is None:
            self.errors.append("a restart event needs a way to restart the service")
            return
        async with self._restarting:
            log.info("scenario step do=restart mode=%s down_s=%.1f", mode, down_s)
            stopped_at = time.time()
            try:
                await self._restart(mode, down_s)
            except Exception as exc:  # the run goes on and reports it, like a refused step
                self.errors.append(f"restart ({mode}) failed: {exc}")
            self._timeline.outages.append((stopped_at, time.time()))

    async def restarts_settled(self) -> None:
        """Until no restart is under way (the service answers again)."""
        async with self._restarting:
            pass

    async def _bad(self, chosen: list[Hub], group: list[Hub], kinds: list[str]) -> None:
        if self._bad_actor is None:
            self.errors.append("bad actors need a broker connection")
            return
        for hub in chosen:
            victim = group[(group.index(hub) + 1) % len(group)] if len(group) > 1 else None
            for kind in kinds:
                await self._bad_actor.act(kind, hub, victim)

    async def _alarms(self, hubs: list[Hub], event: AlarmEvent, times: int, gap_s: float) -> None:
        for n in range(times):
            if n and gap_s:
                await asyncio.sleep(gap_s)
            for hub in hubs:
                hub.alarm(event)

    async def _operator_acks(self, hubs: list[Hub], event: str | None) -> None:
        """An operator takes every open alarm of these devices (of one event, if given)."""
        if self._operator is None:
            self.errors.append("operator_ack needs an operator token (--operator-token)")
            return
        operator = self._operator
        filters: dict[str, Any] = {"state": "open", **({"event": event} if event else {})}

        async def one(hub: Hub) -> None:
            async for alarm in operator.pages("/alarms", device_id=hub.device_id, **filters):
                response = await operator.post(
                    f"/alarms/{alarm['id']}/ack", {"note": "simulated operator"}
                )
                if response.is_success:
                    self._timeline.add(hub.device_id, "operator_ack", msg_id=alarm["msg_id"])
                else:
                    self.errors.append(
                        f"{hub.device_id}: ack alarm {alarm['id']}: HTTP "
                        f"{response.status_code} {response.text[:200]}"
                    )

        await _bounded(one, hubs)

    async def _stages(self, hubs: list[Hub], stage: str) -> None:
        if self._api is None:
            self.errors.append(f"stage {stage}: no API (--no-register)")
            return
        api = self._api

        async def one(hub: Hub) -> None:
            try:
                response = await api.post(f"/devices/{hub.device_id}/migration", {"stage": stage})
            except httpx.HTTPError as exc:
                self.errors.append(f"{hub.device_id}: stage {stage}: {exc!r}")
                return
            if not response.is_success:
                self.errors.append(
                    f"{hub.device_id}: stage {stage}: HTTP {response.status_code} "
                    f"{response.text[:200]}"
                )
                return
            changed = response.json().get("stage_changed_at")
            at = datetime.fromisoformat(changed).timestamp() if changed else time.time()
            self._timeline.add(hub.device_id, "stage", at=at, stage=stage)

        await _bounded(one, hubs)


async def _bounded(work: Callable[[Hub], Awaitable[None]], hubs: list[Hub]) -> None:
    """`work` for every hub, at most API_CONCURRENCY at a time."""
    gate = asyncio.Semaphore(API_CONCURRENCY)

    async def gated(hub: Hub) -> None:
        async with gate:
            await work(hub)

    await asyncio.gather(*(gated(hub) for hub in hubs))


def _steer(hub: Hub, action: Action) -> None:
    """The actions that are one method call on each hub."""
    p = action.params
    if action.do is Do.DROP:
        hub.drop(DropMode(p["mode"]))
    elif action.do is Do.RESTORE:
        hub.restore(p.get("network"))
    elif action.do in (Do.MAINS_OFF, Do.MAINS_ON):
        hub.mains(on=action.do is Do.MAINS_ON)
    elif action.do is Do.PERIPHERAL:
        hub.peripheral(p["kind"], lost=p.get("lost"), battery_pct=p.get("battery_pct"))
    elif action.do is Do.CLOCK:
        hub.skew_s = float(p["skew_s"])
