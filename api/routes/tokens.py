"""/api/v1/tokens: API tokens, named and revocable (admins only); the secret is shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, StringConstraints

from telecare.api.deps import AdminRole, ContextDep, PoolDep
from telecare.api.pagination import CursorQuery, LimitQuery, Page, decode_id_cursor, page
from telecare.api.tokens import Role, TokenRecord, issue_token, list_tokens, revoke_token
from telecare.api.validation import RowId
from telecare.core.text import Storable

router = APIRouter(prefix="/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Storable
    ]
    role: Role


class TokenCreated(BaseModel):
    id: int
    name: str
    role: str
    created_at: datetime
    token: str = Field(description="shown only in this response")


@router.post("", status_code=status.HTTP_201_CREATED)
async def create(body: TokenCreate, pool: PoolDep, principal: AdminRole) -> TokenCreated:
    issued = await issue_token(pool, role=body.role, name=body.name, actor=principal.actor)
    record = issued.record
    return TokenCreated(
        id=record.id,
        name=record.name,
        role=record.role,
        created_at=record.created_at,
        token=issued.token,
    )


@router.get("")
async def list_(
    pool: PoolDep, _: AdminRole, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[TokenRecord]:
    """Every token, newest first, without secrets."""
    rows = await list_tokens(pool, limit=limit + 1, before_id=decode_id_cursor(cursor))
    return page(rows, limit, item=lambda token: token, key=lambda token: token.id)


@router.delete("/{token_id}")
async def revoke(token_id: RowId, context: ContextDep, principal: AdminRole) -> TokenRecord:
    """Revoke: the token stops working at once; revoking it again is 409."""
    record = await revoke_token(context.pool, token_id, actor=principal.actor)
    context.tokens.revoked(token_id)  # here before the notification reaches every process
    return record
