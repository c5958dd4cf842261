"""/tenants/me: who am I, my policy, my keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from caretime.deps import ClockDep, SessionDep
from caretime.tenancy import numbers as tenant_numbers
from caretime.tenancy import service
from caretime.tenancy.auth import PolicyDep, TenantDep
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.schemas import ApiKeyOut, NumbersIn, NumbersOut, TenantOut

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
async def list_keys(tenant: TenantDep, session: SessionDep) -> list[ApiKeyOut]:
    keys = await service.list_keys(session, tenant.id)
    return [ApiKeyOut.model_validate(key) for key in keys]


@router.delete("/keys/{key_id}")
async def revoke_key(
    key_id: str, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ApiKeyOut:
    key = await service.revoke_key(session, tenant.id, key_id, now=clock.now())
    return ApiKeyOut.model_validate(key)


@router.get("/numbers")
async def get_numbers(tenant: TenantDep, session: SessionDep) -> NumbersOut:
    """The numbers this tenant sends from, the sending one first."""
    return NumbersOut(numbers=await tenant_numbers.numbers_of(session, tenant.id))


@router.put("/numbers", responses={409: {"description": "A number belongs to another tenant"}})
async def put_numbers(
    body: NumbersIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> NumbersOut:
    """Replace the numbers this tenant sends from. Twilio messages go out from the first;
    replies to any of them reach this tenant. A number another tenant owns is a 409."""
    numbers = await tenant_numbers.replace_numbers(
        session, tenant.id, body.numbers, now=clock.now()
    )
    return NumbersOut(numbers=numbers)
