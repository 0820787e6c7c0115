"""Domain errors become HTTP answers here, in one place (PROTOCOL section 4)."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.tokens import TokenAlreadyRevoked, TokenNotFound
from devices.errors import (
    BrokerUnavailable,
    DeviceAlreadyRegistered,
    DeviceDecommissioned,
    DeviceNotFound,
    InvalidStageTransition,
    MissingEvidence,
)

_STATUS: dict[type[Exception], int] = {
    DeviceNotFound: status.HTTP_404_NOT_FOUND,
    TokenNotFound: status.HTTP_404_NOT_FOUND,
    DeviceAlreadyRegistered: status.HTTP_409_CONFLICT,
    DeviceDecommissioned: status.HTTP_409_CONFLICT,
    InvalidStageTransition: status.HTTP_409_CONFLICT,
    TokenAlreadyRevoked: status.HTTP_409_CONFLICT,
    MissingEvidence: status.HTTP_409_CONFLICT,
    BrokerUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    content: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, MissingEvidence):
        content["missing"] = exc.missing
    if isinstance(exc, BrokerUnavailable):
        content["detail"] = f"broker credentials not changed, nothing was saved: {exc}"
        return JSONResponse(content, status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "10"})
    return JSONResponse(content, _STATUS[type(exc)])


async def _invalid_request(_: Request, exc: Exception) -> Response:
    """FastAPI's 422, written with ASCII escapes: the errors quote the input, and input that
    is not valid Unicode (a lone surrogate) must not turn the answer into a 500."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    for error in _STATUS:
        app.add_exception_handler(error, _answer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
