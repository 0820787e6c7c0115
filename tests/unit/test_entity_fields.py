"""Each entity's fields are declared once, in its record: the API's answers are the record's
fields minus the ones it marks internal, and the select list names every field. A second list
of fields creeping back (in a public model or a hand-written select list) fails here. No
database or broker."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any, get_type_hints

import pytest
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from telecare.alarms import queries as alarm_queries
from telecare.alarms.queries import AlarmRecord
from telecare.api.items import alarm_public, alert_public
from telecare.api.routes.devices import public as device_public
from telecare.api.schemas import AlarmPublic, AlertPublic, DevicePublic, DeviceRegistered
from telecare.db.record_columns import select_list
from telecare.devices import records as device_records
from telecare.devices.records import DeviceRecord
from telecare.operator_queue import alerts as alert_queries
from telecare.operator_queue.alerts import AlertRecord

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)

# record, its public class, the fields the public class may restate (a validated shape of
# what the record holds as JSON), the fields the record marks internal
ENTITIES = [
    pytest.param(AlertRecord, AlertPublic, {"history"}, set(), id="alert"),
    pytest.param(AlarmRecord, AlarmPublic, {"history"}, set(), id="alarm"),
    pytest.param(DeviceRecord, DevicePublic, set(), {"updated_at", "connection_at"}, id="device"),
]


def _names(cls: Any) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def _internal(record: type) -> set[str]:
    """The fields whose declaration says `Field(exclude=True)`: kept out of the answers."""
    return {
        name
        for name, hint in get_type_hints(record, include_extras=True).items()
        if any(isinstance(m, FieldInfo) and m.exclude for m in getattr(hint, "__metadata__", ()))
    }


def _answer_fields(public: type) -> list[str]:
    """The fields of the API's answer, as its OpenAPI schema lists them."""
    schema = TypeAdapter(public).json_schema(mode="serialization")
    return list(schema["properties"])


@pytest.mark.parametrize(("record", "public", "restated", "internal"), ENTITIES)
def test_the_answer_is_the_record_without_its_internal_fields(
    record: type, public: type, restated: set[str], internal: set[str]
) -> None:
    assert _internal(record) == internal
    shown = [name for name in _names(record) if name not in internal]
    assert _answer_fields(public) == shown
    assert _names(public) == _names(record), "the public class has fields of its own"


@pytest.mark.parametrize(("record", "public", "restated", "internal"), ENTITIES)
def test_a_public_class_restates_no_field_but_the_validated_json(
    record: type, public: type, restated: set[str], internal: set[str]
) -> None:
    declared_here = set(vars(public).get("__annotations__", {}))
    assert declared_here == restated


def test_a_registered_device_is_the_device_with_its_credentials() -> None:
    assert _answer_fields(DeviceRegistered) == [
        *_answer_fields(DevicePublic),
        "mqtt_password",
        "certificate",
    ]


def _value(hint: Any) -> Any:
    text = str(hint)
    if "datetime" in text:
        return NOW
    if "Mapping" in text or "list" in text:
        return []
    if "dict" in text:
        return {}
    if "int" in text:
        return 1
    return "x"


def _record(record: type) -> Any:
    hints = get_type_hints(record)
    return record(**{name: _value(hints[name]) for name in _names(record)})


@pytest.mark.parametrize(
    ("record", "convert", "internal"),
    [
        pytest.param(AlertRecord, alert_public, set(), id="alert"),
        pytest.param(AlarmRecord, alarm_public, set(), id="alarm"),
        pytest.param(DeviceRecord, device_public, {"updated_at", "connection_at"}, id="device"),
    ],
)
def test_an_answer_built_from_a_record_shows_its_fields_in_order(
    record: type, convert: Any, internal: set[str]
) -> None:
    item = convert(_record(record))
    answer = TypeAdapter(type(item)).dump_python(item, mode="json")
    assert list(answer) == [name for name in _names(record) if name not in internal]


@pytest.mark.parametrize(
    ("record", "columns"),
    [
        pytest.param(AlertRecord, alert_queries.COLUMNS, id="alert"),
        pytest.param(AlarmRecord, alarm_queries.COLUMNS, id="alarm"),
        pytest.param(DeviceRecord, device_records.DEVICE_COLUMNS, id="device"),
    ],
)
def test_the_select_list_names_every_field_in_order(record: type, columns: Any) -> None:
    text = columns.as_string()
    named = re.findall(r'(?:"\w+"\.|AS )"(\w+)"', text)
    assert named == _names(record)


def test_a_computed_column_must_be_a_field() -> None:
    with pytest.raises(ValueError, match="no field grouped"):
        select_list(AlarmRecord, table="a", computed={"grouped": "0"})
