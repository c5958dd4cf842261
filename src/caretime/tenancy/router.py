"""/tenants/me: who am I, my policy, my keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from caretime.deps import ClockDep, SessionDep
from caretime.errors import NotFound
from caretime.openapi import problems
from caretime.tenancy import service
from caretime.tenancy.auth import PolicyDep, TenantDep
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.schemas import ApiKeyOut, ApiKeyPage, TenantOut

router = APIRouter(prefix="/tenants/me", tags=["tenants"])


@router.get("")
async def get_me(tenant: TenantDep, policy: PolicyDep) -> TenantOut:
    return TenantOut(id=tenant.id, name=tenant.name, policy=policy)


@router.get("/policy")
async def get_policy(policy: PolicyDep) -> TenantPolicy:
    return policy


@router.patch("/policy")
async def patch_policy(
    tenant: TenantDep,
    session: SessionDep,
    patch: dict[str, Any] = Body(
        description='A JSON merge patch, e.g. {"booking": {"hold": "15m"}}'
    ),
) -> TenantPolicy:
    return await service.update_policy(session, tenant, patch)


@router.get("/keys")
async def list_keys(tenant: TenantDep, session: SessionDep) -> ApiKeyPage:
    """The tenant's API keys (prefixes only, never the keys), oldest first, on one page."""
    keys = await service.list_keys(session, tenant.id)
    return ApiKeyPage(items=[ApiKeyOut.model_validate(key) for key in keys], next_cursor=None)


@router.delete("/keys/{key_id}", responses=problems(NotFound))
async def revoke_key(
    key_id: str, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ApiKeyOut:
    key = await service.revoke_key(session, tenant.id, key_id, now=clock.now())
    return ApiKeyOut.model_validate(key)
