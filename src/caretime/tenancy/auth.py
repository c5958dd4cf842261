"""`Authorization: Bearer <key>` → the caller's tenant, or a 401 problem."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import transaction
from caretime.deps import READ_ONLY_METHODS, RuntimeDep, SessionDep
from caretime.errors import Unauthorized
from caretime.events import set_actor
from caretime.events.actor import api_key_actor
from caretime.observability import bind_tenant
from caretime.runtime import Runtime
from caretime.tenancy.keyshape import key_shape_problem
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.service import authenticate, needs_touch, policy_of, touch_key

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ct_...`")


async def current_tenant(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    plaintext = credentials.credentials.strip()
    problem = key_shape_problem(plaintext)
    if problem is not None:
        raise Unauthorized(f"malformed API key: {problem}")
    tenant, key = await authenticate(session, plaintext)
    bind_tenant(tenant.id)
    set_actor(api_key_actor(key.id))
    now = runtime.clock.now()
    if needs_touch(key, now):
        await _record_use(request, session, runtime, key.id, now)
    return tenant


async def _record_use(
    request: Request, session: AsyncSession, runtime: Runtime, key_id: str, now: datetime
) -> None:
    """Note when a key was last used. A read-only request has no write transaction (and on
    SQLite must not wait for the writer's lock), so it records the use in a short one."""
    if request.method not in READ_ONLY_METHODS:
        await touch_key(session, key_id, now=now)
        return
    async with transaction(runtime.sessions) as writer:
        await touch_key(writer, key_id, now=now)


TenantDep = Annotated[Tenant, Depends(current_tenant)]


def current_policy(tenant: TenantDep) -> TenantPolicy:
    return policy_of(tenant)


PolicyDep = Annotated[TenantPolicy, Depends(current_policy)]
