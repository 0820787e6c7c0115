"""The machine-readable contract in docs/schema/ is what the code says today, and the examples
of docs/PROTOCOL.md are messages the ingest accepts. No database or broker."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from telecare.cli import main
from telecare.protocol.contract import EXAMPLES, payload_file
from telecare.protocol.decode import Rejection, decode
from telecare.protocol.messages import MessageKind

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schema"
PROTOCOL_PAGE = ROOT / "docs" / "PROTOCOL.md"

# An example is a ```json block right after `<!-- example: KIND -->`.
_EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", re.DOTALL)


def _page_examples() -> dict[str, dict[str, Any]]:
    return {kind: json.loads(body) for kind, body in _EXAMPLE.findall(PROTOCOL_PAGE.read_text())}


def _schema(kind: MessageKind) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / payload_file(kind)).read_text())
    return schema


def test_docs_schema_is_what_the_code_generates(tmp_path: Path) -> None:
    assert main(["contract", "export", "--out", str(tmp_path)]) == 0
    generated = {path.name for path in tmp_path.iterdir()}
    committed = {path.name for path in SCHEMA_DIR.glob("*.json")}
    stale = [
        name
        for name in sorted(generated)
        if name not in committed
        or (SCHEMA_DIR / name).read_bytes() != (tmp_path / name).read_bytes()
    ]
    stale += sorted(committed - generated)  # no longer generated: remove it
    assert not stale, f"docs/schema is stale, run `telecare contract export`: {', '.join(stale)}"


@pytest.mark.parametrize("kind", [MessageKind.HEARTBEAT, MessageKind.ALARM])
def test_the_protocol_page_examples_are_accepted_and_match_their_schema(kind: MessageKind) -> None:
    example = _page_examples()[kind.value]
    decode(kind, json.dumps(example).encode())  # as the ingest reads it: Rejection if refused
    schema = _schema(kind)
    assert set(schema["required"]) <= example.keys(), "the example lacks a required field"
    assert example.keys() <= schema["properties"].keys(), "the example has a field not in schema"
    assert example == EXAMPLES[kind], "asyncapi.json shows another example than docs/PROTOCOL.md"


def test_a_heartbeat_without_battery_pct_is_refused_as_its_schema_says() -> None:
    example = dict(_page_examples()["heartbeat"])
    del example["battery_pct"]
    assert "battery_pct" in _schema(MessageKind.HEARTBEAT)["required"]
    with pytest.raises(Rejection) as refused:
        decode(MessageKind.HEARTBEAT, json.dumps(example).encode())
    assert refused.value.reason == "schema" and "battery_pct" in refused.value.detail
    decode(MessageKind.HEARTBEAT, json.dumps({**example, "battery_pct": None}).encode())
