"""API bearer tokens: random, shown once, stored as SHA-256 (they carry 256 bits of entropy)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from core.audit import Actor
from core.db import Pool

TOKEN_PREFIX = "tc_"  # noqa: S105 - a prefix that makes leaked tokens recognisable


class Role(StrEnum):
    ADMIN = "admin"
    TECHNICIAN = "technician"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: Role

    @property
    def actor(self) -> Actor:
        """Who this token's holder is in the audit log and in alert and alarm histories."""
        return Actor(self.name, role=self.role.value, token_id=self.token_id)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(pool: Pool, *, role: Role, name: str) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO api_tokens (name, role, token_hash) VALUES (%s, %s, %s)",
            [name, role.value, _digest(token)],
        )
    return token


async def authenticate(pool: Pool, token: str) -> Principal | None:
    """The token's holder, or None for an unknown or revoked token."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            # last_used_at is refreshed at most once a minute: no write per request.
            """WITH held AS (
                   SELECT id, name, role, last_used_at FROM api_tokens
                   WHERE token_hash = %s AND revoked_at IS NULL
               ), touched AS (
                   UPDATE api_tokens SET last_used_at = now()
                   WHERE id IN (SELECT id FROM held WHERE last_used_at IS NULL
                                OR last_used_at < now() - interval '1 minute')
               )
               SELECT id, name, role FROM held""",
            [_digest(token)],
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return Principal(row[0], row[1], Role(row[2]))
