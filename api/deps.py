"""FastAPI dependencies: the service context, the pool and the caller's role."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from telecare.api.auth_limit import FailedAuthLimiter
from telecare.api.context import ApiContext
from telecare.api.list_cache import ListCache
from telecare.api.tokens import Principal, Role, authenticate, token_digest
from telecare.core.metrics import Metrics
from telecare.db.pool import Pool
from telecare.devices.certificates import DeviceCertificates
from telecare.devices.credentials import BrokerCredentials

log = logging.getLogger(__name__)

# Every dependency here is `async def`, even those that never await: FastAPI runs a plain
# `def` dependency in a worker thread, a thread hand-off per dependency per request (most of a
# request's overhead under load: BENCHMARKS.md).

_bearer = HTTPBearer(auto_error=False, description="API token from `telecare token create`")


async def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


async def get_pool(context: Annotated[ApiContext, Depends(get_context)]) -> Pool:
    return context.pool


async def get_metrics(context: Annotated[ApiContext, Depends(get_context)]) -> Metrics:
    return context.metrics


async def get_credentials(
    context: Annotated[ApiContext, Depends(get_context)],
) -> BrokerCredentials:
    return context.credentials


async def get_certificates(
    context: Annotated[ApiContext, Depends(get_context)],
) -> DeviceCertificates | None:
    return context.certificates


async def get_lists(request: Request) -> ListCache:
    lists: ListCache = request.app.state.lists
    return lists


def json_response(body: str | bytes) -> Response:
    """An answer serialised by the route itself (for one kept as it was sent)."""
    return Response(content=body, media_type="application/json")


ContextDep = Annotated[ApiContext, Depends(get_context)]
ListsDep = Annotated[ListCache, Depends(get_lists)]
PoolDep = Annotated[Pool, Depends(get_pool)]
CredentialsDep = Annotated[BrokerCredentials, Depends(get_credentials)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CertificatesDep = Annotated[DeviceCertificates | None, Depends(get_certificates)]


async def _limiter(request: Request) -> FailedAuthLimiter:
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    return limiter


async def get_principal(
    request: Request,
    pool: PoolDep,
    metrics: MetricsDep,
    limiter: Annotated[FailedAuthLimiter, Depends(_limiter)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    context: ContextDep,
) -> Principal:
    tokens = context.tokens
    if credentials is None:
        metrics.auth_failures.labels("missing").inc()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    address = request.client.host if request.client else "unknown"
    wait_s = limiter.retry_after(address)
    if wait_s:
        metrics.auth_rate_limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed authentications from this address: retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    digest = token_digest(credentials.credentials)
    principal = tokens.get(digest)
    if principal is None:  # asked of the database (which records its last use) once per TTL
        principal = await authenticate(pool, credentials.credentials)
        if principal is not None:
            tokens.put(digest, principal)
    if principal is None:
        limiter.failed(address)
        metrics.auth_failures.labels("invalid").inc()
        log.warning("authentication failed client=%s", address)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that admits only the given roles (401 without a token, 403 for others)."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this ({allowed} only)",
            )
        return principal

    return check


# Who may acknowledge and resolve alerts and alarms.
OPERATOR_ROLES = (Role.ADMIN, Role.OPERATOR)

AnyRole = Annotated[Principal, Depends(require(Role.ADMIN, Role.TECHNICIAN, Role.OPERATOR))]
TechnicianRole = Annotated[Principal, Depends(require(Role.ADMIN, Role.TECHNICIAN))]
OperatorRole = Annotated[Principal, Depends(require(*OPERATOR_ROLES))]
AdminRole = Annotated[Principal, Depends(require(Role.ADMIN))]
