"""/api/v1/alert-rules: the alert thresholds in force (docs/ALERTS.md)."""

from __future__ import annotations

from fastapi import APIRouter

from telecare.alerts.rules import AlertRules
from telecare.api.deps import AnyRole, ContextDep

router = APIRouter(prefix="/alert-rules", tags=["alerts"])


@router.get("")
async def read(context: ContextDep, _: AnyRole) -> AlertRules:
    """The thresholds in force; `raised_types` lists the alert types the engine raises."""
    return AlertRules.from_settings(context.settings)
