"""Alerts and alarms as the API shows them: one conversion for the lists, the item routes and
the event stream, so an event carries exactly what `GET /alerts/{id}` would answer."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import TypeAdapter

from telecare.alarms.queries import AlarmRecord, list_alarms
from telecare.api.schemas import AlarmPublic, AlertPublic
from telecare.core.events import EventKind
from telecare.db.pool import Pool
from telecare.operator_queue.alerts import AlertRecord, list_alerts

# Validated from the record's own attribute dict: `dataclasses.asdict` would deep-copy every
# history and details first (two thirds of a 1,000-alert page's time: BENCHMARKS.md).
_ALERT = TypeAdapter(AlertPublic)
_ALARM = TypeAdapter(AlarmPublic)


def alert_public(record: AlertRecord) -> AlertPublic:
    return _ALERT.validate_python(vars(record))


def alarm_public(record: AlarmRecord) -> AlarmPublic:
    return _ALARM.validate_python(vars(record))


async def load_public(pool: Pool, kind: EventKind, ids: Collection[int]) -> dict[int, Any]:
    """The alerts or alarms with these ids, by id, as JSON-ready dicts of their public shape."""
    if not ids:
        return {}
    if kind == "alert":
        alerts = await list_alerts(pool, limit=len(ids), ids=list(ids))
        return {a.id: _ALERT.dump_python(alert_public(a), mode="json") for a in alerts}
    alarms = await list_alarms(pool, limit=len(ids), ids=list(ids))
    return {a.id: _ALARM.dump_python(alarm_public(a), mode="json") for a in alarms}
