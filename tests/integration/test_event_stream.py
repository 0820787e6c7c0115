"""GET /events: every new or changed alarm and alert, live, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import httpx
import psycopg

from telecare.alerts.decisions import Raise, device_subject
from telecare.alerts.types import AlertType
from telecare.alerts.writer import write_actions
from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.service import Service
from tests.sse import SseReader, about
from tests.support import Devices, Mqtt, alarm, api_client, topic, wait_for


@asynccontextmanager
async def _stream(api: httpx.AsyncClient, **headers: str) -> AsyncIterator[SseReader]:
    async with api.stream("GET", "/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def _raise(service: Service, alert_type: AlertType, device_id: str) -> int:
    [raised] = await write_actions(
        service.pool,
        [Raise(device_subject(alert_type, device_id), alert_type, datetime.now(UTC), device_id)],
    )
    return raised.alert_id


async def test_the_stream_carries_a_new_alarm_and_a_changed_alert_as_the_api_shows_them(
    service: Service, operator: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    async with _stream(operator) as events:
        hello = await events.next()
        assert hello.event == "hello" and hello.id == hello.data["last_event_id"]
        assert events.retry_ms == 3000

        await mqtt.publish(topic(device_id, "alarm"), json.dumps(alarm("smoke")))
        [*_, new_alarm] = await events.until(about(device_id), what="the alarm")
        assert (new_alarm.event, new_alarm.data["action"]) == ("alarm", "created")
        assert new_alarm.data["item"]["event"] == "smoke"
        assert new_alarm.data["item"]["severity"] == "critical"
        assert new_alarm.data["event_id"] == new_alarm.id

        alert_id = await _raise(service, AlertType.BATTERY_LOW, device_id)
        [*_, raised] = await events.until(about(device_id), what="the raised alert")
        assert (raised.event, raised.data["action"], raised.data["state"]) == (
            "alert",
            "created",
            "open",
        )
        acked = await operator.post(f"/alerts/{alert_id}/ack", json={"note": "on it"})
        [*_, changed] = await events.until(about(device_id), what="the acknowledged alert")
        assert (changed.data["action"], changed.data["state"]) == ("updated", "acknowledged")
        # The same body GET /alerts/{id} answers: the console needs no second request.
        assert changed.data["item"] == acked.json()
        assert changed.data["item"]["history"][-1]["note"] == "on it"
        assert hello.id is not None and hello.id < new_alarm.id < raised.id < changed.id  # type: ignore[operator]


async def test_reconnecting_with_last_event_id_replays_exactly_what_was_missed(
    service: Service, operator: httpx.AsyncClient, devices: Devices
) -> None:
    device_id = (await devices.register())["device_id"]
    async with _stream(operator) as events:
        await events.next()  # hello
        first = await _raise(service, AlertType.BATTERY_LOW, device_id)
        [*_, seen] = await events.until(about(device_id), what="the first alert")
    # Disconnected: three changes happen meanwhile.
    second = await _raise(service, AlertType.MAINS_POWER_LOST, device_id)
    assert (await operator.post(f"/alerts/{first}/ack")).status_code == 200
    assert (await operator.post(f"/alerts/{second}/resolve")).status_code == 200

    async with _stream(operator, **{"Last-Event-ID": str(seen.id)}) as events:
        assert (await events.next()).data["last_event_id"] == seen.id
        replayed = await events.until(
            lambda e: about(device_id)(e) and e.data["state"] == "resolved", what="the resolve"
        )
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM events WHERE id > %s AND id <= %s ORDER BY id",
            [seen.id, replayed[-1].id],
        )
        missed = [row[0] for row in await cur.fetchall()]
    # No gap and no duplicate: every event after the last one seen, once, in order.
    assert [e.id for e in replayed] == missed
    mine = [(e.data["item"]["id"], e.data["state"]) for e in replayed if about(device_id)(e)]
    assert mine == [(second, "open"), (first, "acknowledged"), (second, "resolved")]


async def test_event_ids_follow_commit_order(service: Service, devices: Devices) -> None:
    """A transaction that changed an alarm first but commits last gets the higher event id."""
    device_id = (await devices.register())["device_id"]
    insert = (
        "INSERT INTO alarms (device_id, msg_id, event, severity, device_ts, seq)"
        " VALUES (%s, %s, 'fall', 'critical', now(), 1) RETURNING id"
    )
    url = service.settings.database_url
    async with (
        await psycopg.AsyncConnection.connect(url) as slow,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as quick,
    ):
        cur = await slow.execute(insert, [device_id, "slow"])
        slow_alarm = (await cur.fetchone() or [0])[0]
        cur = await quick.execute(insert, [device_id, "quick"])
        quick_alarm = (await cur.fetchone() or [0])[0]
        await slow.commit()
        cur = await quick.execute(
            "SELECT entity_id FROM events WHERE device_id = %s ORDER BY id", [device_id]
        )
        assert [row[0] for row in await cur.fetchall()] == [quick_alarm, slow_alarm]
    assert slow_alarm < quick_alarm  # the rows keep their own ids, taken at insert


async def test_an_unknown_or_too_old_last_event_id_gets_a_reset_and_bad_ones_422(
    operator: httpx.AsyncClient,
) -> None:
    async with _stream(operator, **{"Last-Event-ID": str(10**15)}) as events:
        reset = await events.next()
    assert reset.event == "reset" and reset.data["reason"] == "unknown last event id"
    assert reset.id == reset.data["last_event_id"]

    response = await operator.get("/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]
    response = await operator.get("/events", params={"last_event_id": -1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "last_event_id"]


async def test_a_quiet_stream_sends_keep_alives_and_a_disconnect_is_counted(
    settings: Settings,
) -> None:
    quick = settings.model_copy(update={"event_keepalive_s": 0.2})
    async with Service(quick) as service, await api_client(service, Role.OPERATOR) as api:
        await service.wait_ready()
        async with _stream(api) as events:
            await events.next()
            assert await events.comment(within_s=5) == "keep-alive"
            await wait_for(lambda: _clients_gauge(service, 1), what="one client in /metrics")
        await wait_for(lambda: _clients_gauge(service, 0), what="no client in /metrics")


async def _clients_gauge(service: Service, value: int) -> bool:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{service.api_url}/metrics")).text
    return f"telecare_event_stream_clients {value:.1f}" in text


async def test_an_open_stream_does_not_hold_up_shutdown(settings: Settings) -> None:
    running = AsyncExitStack()
    service = await running.enter_async_context(Service(settings))
    try:
        await service.wait_ready()
        async with await api_client(service, Role.ADMIN) as api, _stream(api) as events:
            await events.next()
            async with asyncio.timeout(30):
                await running.aclose()  # what Ctrl-C or SIGTERM does
            # The server ended the response properly: no truncated chunk, no reset.
            assert await events.ended()
    finally:
        await running.aclose()
