"""/api/v1/devices/import: register many devices from a CSV file, with per-row results."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from telecare.api.csv_import import MAX_BYTES, csv_text, parse_rows, too_large
from telecare.api.deps import (
    CertificatesDep,
    CredentialsDep,
    MetricsDep,
    PoolDep,
    TechnicianRole,
)
from telecare.api.schemas import CertificateBundle, certificate_bundle
from telecare.devices.bulk_import import FieldError, RowResult, import_devices
from telecare.devices.certificates import DeviceCertificates

log = logging.getLogger(__name__)

router = APIRouter(prefix="/devices", tags=["devices"])


class ImportedRow(BaseModel):
    row: int
    device_id: str | None
    ok: bool
    errors: list[FieldError]
    mqtt_password: str | None = Field(description="rows registered for real only")
    certificate: CertificateBundle | None = Field(
        description="with device certificates, rows registered for real only"
    )

    @classmethod
    def of(cls, result: RowResult, certificates: DeviceCertificates | None) -> ImportedRow:
        bundle = None
        if result.certificate is not None and certificates is not None:
            bundle = certificate_bundle(result.certificate, certificates)
        return cls(
            row=result.row,
            device_id=result.device_id,
            ok=result.ok,
            errors=result.errors,
            mqtt_password=result.mqtt_password,
            certificate=bundle,
        )


class ImportSummary(BaseModel):
    dry_run: bool
    rows: int = Field(description="device rows read from the file")
    ok: int = Field(description="rows registered (dry run: rows that would be)")
    failed: int
    results: list[ImportedRow] = Field(
        description="per row: row, device_id, ok, errors [{field, message}], mqtt_password,"
        " certificate"
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise too_large(f"the body has {int(declared)} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BYTES:
            raise too_large("the body is larger")
    return bytes(body)


@router.post(
    "/import",
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def import_csv(
    request: Request,
    pool: PoolDep,
    principal: TechnicianRole,
    credentials: CredentialsDep,
    certificates: CertificatesDep,
    metrics: MetricsDep,
    dry_run: Annotated[bool, Query(description="check every row, register nothing")] = False,
) -> ImportSummary:
    """Register the devices of a CSV file (header: the POST /devices field names).

    Each row stands alone: a failed row leaves nothing and does not stop the others. The new
    devices' MQTT passwords and certificate bundles are in this response only.
    """
    text = csv_text(await _read_body(request), request.headers.get("content-type", ""))
    rows = parse_rows(text)
    started = time.perf_counter()
    result = await import_devices(
        pool,
        rows,
        dry_run=dry_run,
        actor=principal.actor,
        credentials=credentials,
        certificates=certificates,
    )
    log.info(
        "device import rows=%d ok=%d dry_run=%s seconds=%.2f actor=%s",
        len(rows),
        result.registered,
        dry_run,
        time.perf_counter() - started,
        principal.name,
    )
    if not dry_run:
        metrics.devices_registered.labels("import").inc(result.registered)
    return ImportSummary(
        dry_run=dry_run,
        rows=len(rows),
        ok=result.registered,
        failed=len(rows) - result.registered,
        results=[ImportedRow.of(row, certificates) for row in result.rows],
    )
