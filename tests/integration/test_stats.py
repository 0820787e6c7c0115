"""GET /stats/answer-times and /stats/fleet on a database of their own, with known figures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from telecare.alerts.decisions import Group, Raise, area_subject, device_subject
from telecare.alerts.types import AlertType
from telecare.alerts.writer import write_actions
from telecare.api.tokens import Role
from telecare.protocol.messages import AlarmEvent, alarm_severity
from telecare.service import Service
from tests.support import Devices, Mqtt, api_client, heartbeat, topic, wait_for


@pytest.fixture
async def own_admin(own_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(own_service, Role.ADMIN) as client:
        yield client


_ALARM = """
INSERT INTO alarms (device_id, msg_id, event, severity, device_ts, seq, received_at, state,
                    acknowledged_at, acknowledged_by)
VALUES (%(device)s, %(msg)s, %(event)s, %(severity)s, %(at)s::timestamptz, 1, %(at)s::timestamptz,
        CASE WHEN %(answer_s)s::int IS NULL THEN 'open' ELSE 'acknowledged' END,
        %(at)s::timestamptz + make_interval(secs => %(answer_s)s::int), %(by)s)
"""


async def _alarms(service: Service, device_id: str, rows: list[tuple[Any, ...]]) -> None:
    """(received_at, answer seconds or None, operator, event) per alarm."""
    async with service.pool.connection() as conn:
        for n, (at, answer_s, by, event) in enumerate(rows):
            severity = alarm_severity(AlarmEvent(event))
            params = {"device": device_id, "msg": f"m{n}", "event": event, "at": at}
            params["severity"] = severity
            await conn.execute(_ALARM, {**params, "answer_s": answer_s, "by": by})


def _shares(figures: dict[str, Any]) -> list[tuple[int, int]]:
    return [(t["met"], t["counted"]) for t in figures["targets"]]


async def test_answer_time_shares_per_day_and_operator_from_known_ack_times(
    own_service: Service, own_admin: httpx.AsyncClient
) -> None:
    device_id = (await Devices(own_admin).register())["device_id"]
    day1, day2 = "2020-03-02T10:00:00Z", "2020-03-03T23:30:00Z"  # GMT: local day = UTC day
    await _alarms(
        own_service,
        device_id,
        [
            *[(day1, s, "alice", "fall") for s in (10, 59, 60, 61, 200)],
            (day1, 30, "bob", "pendant"),
            (day1, None, None, "smoke"),  # never answered: a miss against both targets
            (day1, 500, "alice", "test"),  # a technical event: left out unless asked for
            (day2, 170, "bob", "fall"),
        ],
    )
    params = {"from": "2020-03-01", "to": "2020-03-03"}
    figures = (await own_admin.get("/stats/answer-times", params=params)).json()

    assert (figures["first_day"], figures["last_day"], figures["tz"]) == (
        "2020-03-01",
        "2020-03-03",
        "Europe/London",
    )
    assert [d["day"] for d in figures["days"]] == ["2020-03-01", "2020-03-02", "2020-03-03"]
    empty, first, second = (d["figures"] for d in figures["days"])
    assert (empty["alarms"], _shares(empty)) == (0, [(0, 0), (0, 0)])
    assert [t["share"] for t in empty["targets"]] == [None, None]
    assert (first["alarms"], first["answered"], first["waiting"]) == (7, 6, 1)
    assert _shares(first) == [(4, 7), (5, 7)]
    assert [t["target"] for t in first["targets"]] == [0.975, 0.99]
    assert [t["on_target"] for t in first["targets"]] == [False, False]
    by_operator = {o["operator"]: o["figures"] for o in figures["days"][1]["operators"]}
    assert {name: _shares(f) for name, f in by_operator.items()} == {
        "alice": [(3, 5), (4, 5)],
        "bob": [(1, 1), (1, 1)],
    }
    assert by_operator["alice"]["median_s"] == 60
    assert by_operator["alice"]["max_s"] == 200
    assert _shares(second) == [(0, 1), (1, 1)]
    assert _shares(figures["total"]) == [(4, 8), (6, 8)]
    assert {o["operator"]: _shares(o["figures"]) for o in figures["operators"]} == {
        "alice": [(3, 5), (4, 5)],
        "bob": [(1, 2), (2, 2)],
    }
    technical = (
        await own_admin.get("/stats/answer-times", params={**params, "include_technical": True})
    ).json()
    assert _shares(technical["total"]) == [(4, 9), (6, 9)]


async def test_an_alarm_waiting_counts_against_a_target_only_once_it_has_missed_it(
    own_service: Service, own_admin: httpx.AsyncClient
) -> None:
    device_id = (await Devices(own_admin).register())["device_id"]
    async with own_service.pool.connection() as conn:
        cur = await conn.execute("SELECT now() - interval '30 seconds', now() - interval '2 min'")
        just_now, two_minutes_ago = await cur.fetchone() or (None, None)
    await _alarms(
        own_service,
        device_id,
        [(just_now, None, None, "fall"), (two_minutes_ago, None, None, "fall")],
    )
    today = (await own_admin.get("/stats/answer-times", params={"tz": "UTC"})).json()["total"]
    assert (today["alarms"], today["waiting"]) == (2, 2)
    # 30 s: may still make both targets; 2 min: has missed 60 s, may still make 180 s.
    assert _shares(today) == [(0, 1), (0, 0)]


async def test_answer_time_parameters_are_checked(operator: httpx.AsyncClient) -> None:
    cases = [
        ({"tz": "Mars/Olympus_Mons"}, ["query", "tz"]),
        ({"from": "2026-11-23", "to": "2026-11-01"}, ["query", "from"]),
        ({"from": "yesterday"}, ["query", "from"]),
        ({"from": "2020-01-01", "to": "2026-01-01"}, ["query", "from"]),
        ({"include_technical": "perhaps"}, ["query", "include_technical"]),
    ]
    for params, loc in cases:
        response = await operator.get("/stats/answer-times", params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"] == loc, params


async def test_fleet_counts_devices_alerts_and_alarms(
    own_service: Service, own_admin: httpx.AsyncClient, mqtt: Mqtt
) -> None:
    devices = Devices(own_admin)
    online = (await devices.register(migration_stage="complete"))["device_id"]
    overdue = (await devices.register(migration_stage="in_progress"))["device_id"]
    offline = (await devices.register(migration_stage="in_progress"))["device_id"]
    await devices.register()  # never seen, analogue
    gone = (await devices.register())["device_id"]
    assert (await own_admin.delete(f"/devices/{gone}")).status_code == 200
    for device_id in (online, overdue, offline):
        await mqtt.publish(topic(device_id, "heartbeat"), heartbeat())

    async def heard() -> bool:
        stats = (await own_admin.get("/stats/fleet")).json()["devices"]["by_status"]
        return bool(stats["online"] == 3)

    await wait_for(heard, what="heartbeats stored")
    await mqtt.publish(topic(offline, "status"), json.dumps({"state": "offline"}))
    async with own_service.pool.connection() as conn:  # its last heartbeat a day ago
        for table, column in (
            ("device_state", "last_heartbeat_at"),
            ("devices", "stage_changed_at"),
        ):
            await conn.execute(
                f"UPDATE {table} SET {column} = now() - interval '1 day' WHERE device_id = %s",
                [overdue],
            )
    now = datetime.now(UTC)
    area = area_subject("postcode:SW1A", "silence")
    written = await write_actions(
        own_service.pool,
        [
            Raise(
                device_subject(AlertType.BATTERY_LOW, online), AlertType.BATTERY_LOW, now, online
            ),
            Raise(area, AlertType.AREA_OUTAGE, now, area="postcode:SW1A"),
            Raise(
                device_subject(AlertType.HEARTBEAT_MISSED, overdue),
                AlertType.HEARTBEAT_MISSED,
                now,
                overdue,
            ),
        ],
    )
    await write_actions(
        own_service.pool, [Group(area, (device_subject(AlertType.HEARTBEAT_MISSED, overdue),))]
    )
    battery_alert = next(c.alert_id for c in written if c.type == AlertType.BATTERY_LOW)
    assert (await own_admin.post(f"/alerts/{battery_alert}/ack")).status_code == 200
    await _alarms(
        own_service,
        online,
        [(now, None, None, "fall"), (now, None, None, "flood"), (now, 20, "alice", "fall")],
    )

    async def counted() -> dict[str, Any] | None:
        stats: dict[str, Any] = (await own_admin.get("/stats/fleet")).json()
        return stats if stats["devices"]["by_status"]["offline"] == 1 else None

    stats = await wait_for(counted, what="the offline status stored")
    assert stats["devices"] == {
        "total": 4,
        "by_status": {"online": 1, "overdue": 1, "offline": 1, "never_seen": 1},
        "by_stage": {
            "analogue": 1,
            "scheduled": 0,
            "in_progress": 2,
            "verifying": 0,
            "complete": 1,
            "failed": 0,
        },
        "decommissioned": 1,
    }
    assert stats["alerts"] == {  # the engine raised connection_lost (medium) for the Last Will
        "open": {"critical": 1, "high": 0, "medium": 1, "low": 0},
        "acknowledged": {"critical": 0, "high": 0, "medium": 1, "low": 0},
        "grouped": 1,
    }
    alarms = stats["alarms"]
    assert (alarms["waiting"], alarms["waiting_critical"], alarms["in_hand"]) == (2, 1, 1)
    assert alarms["oldest_waiting_at"] is not None


async def test_fleet_figures_are_counted_once_and_shared_while_recent(
    own_service: Service, own_admin: httpx.AsyncClient
) -> None:
    assert own_service.settings.fleet_stats_max_age_s >= 5
    together = [(await own_admin.get("/stats/fleet")).json() for _ in range(3)]
    await Devices(own_admin).register()
    later = (await own_admin.get("/stats/fleet")).json()
    assert together[0] == together[1] == together[2] == later  # one count, its own time
    assert later["devices"]["total"] == 0
