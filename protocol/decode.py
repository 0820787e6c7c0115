"""Validating a device message: bytes in, a protocol model out, or the reason it was refused."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from telecare.core.text import NUL_FREE, NUL_FREE_PROBLEM
from telecare.protocol.messages import MAX_PAYLOAD_BYTES, Alarm, Heartbeat, MessageKind, Status

_MODELS: dict[MessageKind, type[BaseModel]] = {
    MessageKind.HEARTBEAT: Heartbeat,
    MessageKind.ALARM: Alarm,
    MessageKind.STATUS: Status,
}


class Rejection(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(kind: MessageKind, payload: bytes) -> BaseModel:
    """Validate a payload against docs/PROTOCOL.md section 2, or raise Rejection with the reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejection("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection("invalid_json", f"not UTF-8: {exc}") from None
    model = _MODELS[kind]
    try:
        return model.model_validate_json(text)  # a valid message is parsed once
    except ValidationError as exc:
        refused = exc
    # Refused: say why, as precisely as the payload allows.
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejection("invalid_json", str(exc)) from None
    except RecursionError:
        raise Rejection("invalid_json", "JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise Rejection("schema", f"payload is a JSON {type(data).__name__}, not an object")
    errors = refused.errors()
    # JSON that Python reads but the strict parser refuses (a lone surrogate, nesting).
    reason = "invalid_json" if errors[0]["type"] == "json_invalid" else "schema"
    fields = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {_message(err)}" for err in errors[:5]
    )
    raise Rejection(reason, fields) from None


def _message(error: ErrorDetails) -> str:
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == (
        NUL_FREE
    ):
        return NUL_FREE_PROBLEM
    return error["msg"]
