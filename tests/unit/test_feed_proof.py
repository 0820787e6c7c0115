"""Deadlines are judged only as far as the feed is proven to have delivered, and the canary
says how far that is."""

from __future__ import annotations

import asyncio

from telecare.alerts.clock import ManualClock
from telecare.alerts.decisions import Action, Raise
from telecare.alerts.device_rules import DeviceRules, DeviceSnapshot
from telecare.alerts.rules import AlertRules
from telecare.core.settings import Settings
from telecare.protocol.canary import Canary, is_canary
from telecare.protocol.messages import Heartbeat

RULES = AlertRules.from_settings(Settings())


def _beat() -> Heartbeat:
    return Heartbeat.model_validate(
        {
            "msg_id": "m",
            "ts": "2026-12-01T00:00:00Z",
            "seq": 1,
            "interval_s": 10,
            "power": "mains",
            "battery_pct": 90,
            "signal_dbm": -70,
            "network": "4g",
        }
    )


def test_a_deadline_past_what_the_feed_proved_waits_for_the_backlog() -> None:
    clock = ManualClock()
    actions: list[Action] = []
    rules = DeviceRules(RULES, clock, actions.append)
    start = clock.now()
    for device_id in ("alive", "silent"):
        rules.track(DeviceSnapshot(device_id, 20, False, clock.wall(start)))
    now = clock.advance(25)  # both deadlines passed while the feed was down
    due = rules.tick(now, heard_until=start + 5)
    assert actions == [], "judged on silence the feed could not hear"
    assert due is not None and due <= now  # proof is wanted for this moment
    rules.heartbeat("alive", _beat())  # read from the backlog
    rules.tick(now, heard_until=now)
    assert [a.subject for a in actions if isinstance(a, Raise)] == ["heartbeat_missed:silent"]
    rules.tick(clock.advance(1), heard_until=clock.now())
    assert len(actions) == 1, "raised once"


async def test_the_canary_proves_up_to_when_it_was_sent() -> None:
    now = [100.0]
    canary = Canary(interval_s=1.0, owner="p1", clock=lambda: now[0])
    sent: list[tuple[str, bytes]] = []
    published = asyncio.Event()

    async def publish(topic: str, payload: bytes) -> None:
        sent.append((topic, payload))
        published.set()

    canary.publish_with(publish)
    heard: list[float] = []
    canary.on_heard(lambda: heard.append(canary.heard_until))
    assert is_canary(canary.topic) and not canary.is_live()
    task = asyncio.create_task(canary.run())
    canary.probe(after=100.0)
    await asyncio.wait_for(published.wait(), timeout=5)
    now[0] = 100.5
    canary.received("telecare/v1/_canary-other/ack", sent[0][1])  # another process's
    assert heard == []
    canary.received(*sent[0])
    assert heard == [100.0] and canary.is_live()
    now[0] = 102.5
    assert not canary.is_live(), "no canary back for two intervals: stale"
    task.cancel()
