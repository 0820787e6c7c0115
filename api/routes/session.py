"""/api/v1/session: who the caller's token belongs to (the console shows it, and offers
acknowledge and resolve only to the roles that may)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from telecare.api.deps import OPERATOR_ROLES, AnyRole

router = APIRouter(prefix="/session", tags=["session"])


@dataclass(frozen=True)
class SessionInfo:
    name: str
    role: str
    token_id: int
    may_act: bool  # may acknowledge and resolve alerts and alarms


@router.get("")
async def read(principal: AnyRole) -> SessionInfo:
    return SessionInfo(
        principal.name, principal.role.value, principal.token_id, principal.role in OPERATOR_ROLES
    )
