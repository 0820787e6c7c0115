"""API bearer tokens: random, shown once, stored as SHA-256 (they carry 256 bits of entropy).

A token reads `tc_{id}_{secret}`: the id finds the row, then the stored hash is compared in
constant time (`hmac.compare_digest`), so no lookup by secret leaks timing. Tokens are named,
revocable and remember their last use (written at most once a minute, not per request).
Each API process remembers a token that authenticated for a few seconds (api/token_cache.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from psycopg.rows import class_row

from telecare.core.text import storable_text_problem
from telecare.db import audit
from telecare.db.audit import Actor
from telecare.db.notifications import notify
from telecare.db.pool import Pool

TOKEN_PREFIX = "tc_"  # noqa: S105 - a prefix that makes leaked tokens recognisable
# Notified with the token id when a token is revoked: API processes forget it at once.
TOKEN_REVOKED = "telecare_token_revoked"  # noqa: S105 - a channel name, not a secret


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


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewToken:
    record: TokenRecord
    token: str


class TokenNotFound(LookupError):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"token {token_id} does not exist")


class TokenAlreadyRevoked(ValueError):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"token {token_id} is already revoked")


_COLUMNS = "id, name, role, created_at, last_used_at, revoked_at"


def token_digest(token: str) -> str:
    """What is stored of a token (and what the API's TokenCache remembers it by)."""
    return hashlib.sha256(token.encode()).hexdigest()


_NO_TOKEN = token_digest("")  # what an unknown id is compared with


def _parse(token: str) -> int | None:
    if storable_text_problem(token):
        return None
    token_id, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    if not token.startswith(TOKEN_PREFIX) or not secret or not token_id.isdigit():
        return None
    return int(token_id) if len(token_id) <= 18 else None


async def issue_token(pool: Pool, *, role: Role, name: str, actor: Actor) -> NewToken:
    """A new token for `name`; the secret is in the result only, never stored."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT nextval(pg_get_serial_sequence('api_tokens', 'id'))")
        row = await cur.fetchone()
        assert row is not None
        token = f"{TOKEN_PREFIX}{row[0]}_{secrets.token_urlsafe(32)}"
        async with conn.cursor(row_factory=class_row(TokenRecord)) as typed:
            await typed.execute(
                f"INSERT INTO api_tokens (id, name, role, token_hash) VALUES (%s, %s, %s, %s)"  # noqa: S608 - constant SQL
                f" RETURNING {_COLUMNS}",
                [row[0], name, role.value, token_digest(token)],
            )
            record = await typed.fetchone()
        assert record is not None
        await audit.record(
            conn,
            actor,
            action="token.create",
            target_type="token",
            target_id=str(record.id),
            details={"name": name, "role": role.value},
        )
    return NewToken(record, token)


async def create_token(pool: Pool, *, role: Role, name: str) -> str:
    """`telecare token create`: the token text (the audit log names the CLI)."""
    return (await issue_token(pool, role=role, name=name, actor=audit.CLI)).token


async def list_tokens(pool: Pool, *, limit: int, before_id: int | None) -> list[TokenRecord]:
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(TokenRecord)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM api_tokens"  # noqa: S608 - constant SQL
            " WHERE (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC"
            " LIMIT %(limit)s",
            {"before": before_id, "limit": limit},
        )
        return await cur.fetchall()


async def revoke_token(pool: Pool, token_id: int, *, actor: Actor) -> TokenRecord:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT revoked_at FROM api_tokens WHERE id = %s FOR UPDATE", [token_id]
        )
        row = await cur.fetchone()
        if row is None:
            raise TokenNotFound(token_id)
        if row[0] is not None:
            raise TokenAlreadyRevoked(token_id)
        async with conn.cursor(row_factory=class_row(TokenRecord)) as typed:
            await typed.execute(
                f"UPDATE api_tokens SET revoked_at = now() WHERE id = %s RETURNING {_COLUMNS}",  # noqa: S608 - constant SQL
                [token_id],
            )
            record = await typed.fetchone()
        assert record is not None
        await notify(conn, TOKEN_REVOKED, str(token_id))  # delivered on commit
        await audit.record(
            conn, actor, action="token.revoke", target_type="token", target_id=str(token_id)
        )
    return record


async def authenticate(pool: Pool, token: str) -> Principal | None:
    """The token's holder, or None for an unknown, malformed or revoked token."""
    token_id = _parse(token)
    if token_id is None:
        return None
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, role, token_hash, last_used_at < now() - interval '1 minute'"
            " OR last_used_at IS NULL FROM api_tokens WHERE id = %s AND revoked_at IS NULL",
            [token_id],
        )
        row = await cur.fetchone()
        # Compared even when no such token exists, so the answer takes as long either way.
        matches = hmac.compare_digest(row[2] if row else _NO_TOKEN, token_digest(token))
        if row is None or not matches:
            return None
        if row[3]:
            await conn.execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE id = %s"
                " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                [token_id],
            )
    return Principal(token_id, row[0], Role(row[1]))
