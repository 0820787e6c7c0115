"""The switchover: a device's migration stage and history, and the migration report.

Answers are the dataclasses of devices/migration.py and devices/migration_report.py as they
are: their shape is the public one (docs/REGISTRY.md), so no second copy of them is kept here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from telecare.api.deps import AnyRole, PoolDep, TechnicianRole
from telecare.api.schemas import MigrationStage, Note
from telecare.devices.migration import MigrationView, change_stage, get_migration
from telecare.devices.migration_report import MigrationReport, migration_report

router = APIRouter(tags=["migration"])


class StageChangeRequest(BaseModel):
    stage: MigrationStage
    note: Note | None = None


@router.get("/devices/{device_id}/migration")
async def read(device_id: str, pool: PoolDep, _: AnyRole) -> MigrationView:
    """The stage, the stages it may move to, the evidence while verifying, and the history."""
    return await get_migration(pool, device_id)


@router.post("/devices/{device_id}/migration")
async def change(
    device_id: str, body: StageChangeRequest, pool: PoolDep, principal: TechnicianRole
) -> MigrationView:
    """Move to `stage`: 409 for a transition the stages do not allow or missing evidence."""
    return await change_stage(pool, device_id, body.stage, note=body.note, actor=principal.actor)


@router.get("/migration/report")
async def report(
    pool: PoolDep,
    _: AnyRole,
    postcode_district: str | None = None,
    at_risk_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> MigrationReport:
    """Counts per stage per postcode district, and the devices at risk, longest first."""
    return await migration_report(
        pool, postcode_district=postcode_district, at_risk_limit=at_risk_limit
    )
