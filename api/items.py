"""Alerts and alarms as the API shows them: one conversion for the lists, the item routes and
the event stream, so an event carries exactly what `GET /alerts/{id}` would answer."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from telecare.alarms.queries import AlarmRecord, list_alarms
from telecare.api.schemas import AlarmPublic, AlertPublic
from telecare.core.events import EventKind
from telecare.db.pool import Pool
from telecare.operator_queue.alerts import AlertRecord, list_alerts

# Validated from the record's attributes: `dataclasses.asdict` would deep-copy every history
# and details first (two thirds of a 1,000-alert page's time: BENCHMARKS.md).


def alert_public(record: AlertRecord) -> AlertPublic:
    return AlertPublic.model_validate(record, from_attributes=True)


def alarm_public(record: AlarmRecord) -> AlarmPublic:
    return AlarmPublic.model_validate(record, from_attributes=True)


async def load_public(pool: Pool, kind: EventKind, ids: Collection[int]) -> dict[int, Any]:
    """The alerts or alarms with these ids, by id, as JSON-ready dicts of their public shape."""
    if not ids:
        return {}
    if kind == "alert":
        alerts = await list_alerts(pool, limit=len(ids), ids=list(ids))
        return {a.id: alert_public(a).model_dump(mode="json") for a in alerts}
    alarms = await list_alarms(pool, limit=len(ids), ids=list(ids))
    return {a.id: alarm_public(a).model_dump(mode="json") for a in alarms}
