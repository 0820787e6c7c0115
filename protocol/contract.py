"""The device side of the contract as machine-readable documents (docs/PROTOCOL.md section 2):
a JSON Schema per MQTT payload and an AsyncAPI 3.0 description of the topics.

Both are generated from the wire models of messages.py, the ones the ingest validates with, so
the published schema cannot say something the decoder does not do. `telecare contract export`
writes them to docs/schema/ and a unit test fails when the files there are stale.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from telecare.protocol.messages import (
    DEVICE_ID_PATTERN,
    MAX_PAYLOAD_BYTES,
    TOPIC_ROOT,
    Ack,
    Alarm,
    Heartbeat,
    MessageKind,
    Status,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.json"
_MQTT_BINDING = "0.2.0"

PAYLOAD_MODELS: dict[MessageKind, type[BaseModel]] = {
    MessageKind.HEARTBEAT: Heartbeat,
    MessageKind.ALARM: Alarm,
    MessageKind.STATUS: Status,
    MessageKind.ACK: Ack,
}

_SUMMARIES: dict[MessageKind, str] = {
    MessageKind.HEARTBEAT: "A device is alive: its supply, battery, signal, bearer, peripherals.",
    MessageKind.ALARM: (
        "A device raises an alarm; it repeats it with the same msg_id until it is acknowledged."
    ),
    MessageKind.STATUS: (
        "A device's connection state: retained `online` once connected, and `offline` as its"
        ' Last Will ({"state":"offline","reason":"lwt"}) or before a clean disconnect.'
    ),
    MessageKind.ACK: (
        "The backend's answer to an alarm: `accepted` once it is committed, `duplicate` for a"
        " repeat, `rejected` with a reason. `reason` is left out when there is none; `msg_id` is"
        " empty when a rejected payload had no readable one."
    ),
}

# QoS and retain flag of each topic; heartbeats may also be published at QoS 0.
_DELIVERY: dict[MessageKind, tuple[int, bool]] = {
    MessageKind.HEARTBEAT: (1, False),
    MessageKind.ALARM: (1, False),
    MessageKind.STATUS: (1, True),
    MessageKind.ACK: (1, False),
}

EXAMPLES: dict[MessageKind, dict[str, Any]] = {
    MessageKind.HEARTBEAT: {
        "msg_id": "hb-000123",
        "ts": "2026-11-23T06:00:00Z",
        "seq": 123,
        "interval_s": 300,
        "power": "mains",
        "battery_pct": 97,
        "signal_dbm": -71,
        "network": "4g",
        "firmware": "4.2.1",
        "peripherals": [{"id": "p1", "kind": "pendant", "battery_pct": 80, "last_seen_s": 40}],
    },
    MessageKind.ALARM: {
        "msg_id": "al-000124",
        "ts": "2026-11-23T06:01:10Z",
        "seq": 124,
        "event": "fall",
        "peripheral": "p1",
    },
    MessageKind.STATUS: {"state": "offline", "reason": "lwt"},
    MessageKind.ACK: {
        "msg_id": "al-000124",
        "result": "accepted",
        "ts": "2026-11-23T06:01:10.250000Z",
    },
}


def payload_file(kind: MessageKind) -> str:
    return f"{kind.value}.schema.json"


def payload_schema(kind: MessageKind) -> dict[str, Any]:
    """The JSON Schema of one payload. What devices send is described as the backend validates
    it; the ack as the backend writes it. Unknown fields are allowed (and ignored)."""
    mode: JsonSchemaMode = "serialization" if kind is MessageKind.ACK else "validation"
    schema = PAYLOAD_MODELS[kind].model_json_schema(mode=mode)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": payload_file(kind),
        **schema,
        "description": f"{_SUMMARIES[kind]} UTF-8 JSON, at most {MAX_PAYLOAD_BYTES} bytes.",
    }


def _channel(kind: MessageKind) -> dict[str, Any]:
    return {
        "address": f"{TOPIC_ROOT}/{{device_id}}/{kind.value}",
        "description": _SUMMARIES[kind],
        "messages": {kind.value: {"$ref": f"#/components/messages/{kind.value}"}},
        "parameters": {"device_id": {"$ref": "#/components/parameters/device_id"}},
    }


def _action(kind: MessageKind) -> str:
    return "send" if kind is MessageKind.ACK else "receive"


def _operation_id(kind: MessageKind) -> str:
    return f"{_action(kind)}{kind.value.capitalize()}"


def _operation(kind: MessageKind) -> dict[str, Any]:
    qos, retain = _DELIVERY[kind]
    binding: dict[str, Any] = {"bindingVersion": _MQTT_BINDING, "qos": qos, "retain": retain}
    if kind is MessageKind.HEARTBEAT:
        binding["x-qos-accepted"] = [0, 1]
    operation: dict[str, Any] = {
        "action": _action(kind),
        "bindings": {"mqtt": binding},
        "channel": {"$ref": f"#/channels/{kind.value}"},
        "messages": [{"$ref": f"#/channels/{kind.value}/messages/{kind.value}"}],
        "summary": _SUMMARIES[kind],
    }
    if kind is MessageKind.ALARM:
        operation["reply"] = {
            "channel": {"$ref": "#/channels/ack"},
            "messages": [{"$ref": "#/channels/ack/messages/ack"}],
        }
    return operation


def _message(kind: MessageKind) -> dict[str, Any]:
    return {
        "contentType": "application/json",
        "examples": [{"payload": EXAMPLES[kind]}],
        "name": kind.value,
        "payload": {"$ref": payload_file(kind)},
        "summary": _SUMMARIES[kind],
        "x-max-bytes": MAX_PAYLOAD_BYTES,
    }


def asyncapi_document() -> dict[str, Any]:
    """The MQTT side as AsyncAPI 3.0, from the backend's point of view: it receives heartbeats,
    alarms and status messages, and sends acks. Payloads reference the schema files beside it."""
    kinds = list(MessageKind)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Telecare device wire protocol",
            "version": "1",
            "description": (
                "Topics and payloads between telecare hubs and the backend; the rules are in"
                " docs/PROTOCOL.md section 2. A device connects with client id = username = its"
                " device id and publishes only under its own id."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "127.0.0.1:1883",
                "protocol": "mqtt",
                "description": "TELECARE_MQTT_URL (mqtts:// for TLS).",
            }
        },
        "channels": {kind.value: _channel(kind) for kind in kinds},
        "operations": {_operation_id(kind): _operation(kind) for kind in kinds},
        "components": {
            "messages": {kind.value: _message(kind) for kind in kinds},
            "parameters": {
                "device_id": {
                    "description": f"The device's id, matching `{DEVICE_ID_PATTERN}`.",
                    "examples": ["hub-0001"],
                    "x-pattern": DEVICE_ID_PATTERN,
                }
            },
        },
    }


def contract_documents() -> dict[str, dict[str, Any]]:
    """File name -> document, for every file of the device side."""
    documents = {payload_file(kind): payload_schema(kind) for kind in MessageKind}
    documents[ASYNCAPI_FILE] = asyncapi_document()
    return documents
