"""Domain errors become HTTP answers here, in one place (docs/PROTOCOL.md section 4)."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from telecare.api.body_limit import TOO_LARGE_SCOPE_KEY, too_large_detail
from telecare.api.tokens import TokenAlreadyRevoked, TokenNotFound
from telecare.devices.device_ca import CertificateRequestInvalid
from telecare.devices.errors import (
    BrokerUnavailable,
    CredentialUnavailable,
    DeviceAlreadyRegistered,
    DeviceDecommissioned,
    DeviceNotFound,
    InvalidStageTransition,
    MissingEvidence,
    NoActiveCertificate,
    NotACertificateDevice,
)

_STATUS: dict[type[Exception], int] = {
    DeviceNotFound: status.HTTP_404_NOT_FOUND,
    TokenNotFound: status.HTTP_404_NOT_FOUND,
    DeviceAlreadyRegistered: status.HTTP_409_CONFLICT,
    DeviceDecommissioned: status.HTTP_409_CONFLICT,
    InvalidStageTransition: status.HTTP_409_CONFLICT,
    TokenAlreadyRevoked: status.HTTP_409_CONFLICT,
    MissingEvidence: status.HTTP_409_CONFLICT,
    NoActiveCertificate: status.HTTP_409_CONFLICT,
    NotACertificateDevice: status.HTTP_409_CONFLICT,
    CredentialUnavailable: status.HTTP_422_UNPROCESSABLE_CONTENT,
    CertificateRequestInvalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    BrokerUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    content: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, MissingEvidence):
        content["missing"] = exc.missing
    if isinstance(exc, CertificateRequestInvalid | CredentialUnavailable):  # as a bad field
        field, kind = ("csr", "csr_invalid")
        if isinstance(exc, CredentialUnavailable):
            field, kind = ("credential", "credential_unavailable")
        error = {"type": kind, "loc": ["body", field], "msg": str(exc), "input": None}
        return JSONResponse({"detail": [error]}, status.HTTP_422_UNPROCESSABLE_CONTENT)
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


async def _http_error(request: Request, exc: Exception) -> Response:
    """The framework answers a body it could not parse with a bare 400. Here that is a 413
    when the body passed the size limit, and a 422 naming the fault when it was not UTF-8 or
    nested too deeply to decode: the same status and shape as any other invalid body."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST:
        if (limit := request.scope.get(TOO_LARGE_SCOPE_KEY)) is not None:
            return JSONResponse(
                {"detail": too_large_detail(limit)},
                status.HTTP_413_CONTENT_TOO_LARGE,
                {"Connection": "close"},
            )
        if (reason := _unparsable_body(exc.__cause__)) is not None:
            error = {"type": "json_invalid", "loc": ["body"], "msg": reason, "input": None}
            return JSONResponse({"detail": [error]}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, exc)


def _unparsable_body(cause: BaseException | None) -> str | None:
    if isinstance(cause, UnicodeDecodeError):
        return f"body is not UTF-8: byte {cause.start} cannot be decoded"
    if isinstance(cause, RecursionError):
        return "body is nested too deeply to decode"
    if isinstance(cause, ValueError):
        return f"body is not valid JSON: {cause}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    for error in _STATUS:
        app.add_exception_handler(error, _answer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
