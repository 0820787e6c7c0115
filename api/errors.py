"""Domain errors become HTTP answers here, in one place (PROTOCOL section 4)."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
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


def install_error_handlers(app: FastAPI) -> None:
    for error in _STATUS:
        app.add_exception_handler(error, _answer)
