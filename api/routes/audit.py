"""/api/v1/audit: who changed what, when (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from telecare.api.deps import AdminRole, PoolDep
from telecare.api.filters import SinceQuery
from telecare.api.pagination import CursorQuery, LimitQuery, Page, decode_id_cursor, page
from telecare.db.audit import AuditEntry, list_entries

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
async def list_(
    pool: PoolDep,
    _: AdminRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    actor: Annotated[str | None, Query(description="token name, `cli` or `system`")] = None,
    action: Annotated[str | None, Query(description="e.g. device.register")] = None,
    target_type: Annotated[str | None, Query(description="e.g. device, token, alarm")] = None,
    target_id: str | None = None,
    since: SinceQuery = None,
) -> Page[AuditEntry]:
    """Entries newest first."""
    rows = await list_entries(
        pool,
        limit=limit + 1,
        before_id=decode_id_cursor(cursor),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
    )
    return page(rows, limit, item=lambda entry: entry, key=lambda entry: entry.id)
