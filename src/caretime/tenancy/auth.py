"""`Authorization: Bearer <key>` → the caller's tenant, or a 401 problem."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from caretime.deps import ClockDep, SessionDep
from caretime.errors import Unauthorized
from caretime.observability import bind_tenant
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.service import KEY_PREFIX, authenticate, policy_of

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ct_...`")


async def current_tenant(
    session: SessionDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    key = credentials.credentials.strip()
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise Unauthorized("malformed API key: keys look like 'ct_...'")
    tenant = await authenticate(session, key, now=clock.now())
    bind_tenant(tenant.id)
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]


def current_policy(tenant: TenantDep) -> TenantPolicy:
    return policy_of(tenant)


PolicyDep = Annotated[TenantPolicy, Depends(current_policy)]
