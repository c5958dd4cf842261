"""/tenants/me: who am I, my policy, my keys."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Body, Response

from caretime.deps import ClockDep, RuntimeDep, SessionDep
from caretime.errors import Conflict, NotFound
from caretime.openapi import problems
from caretime.storable import PathText
from caretime.tenancy import numbers as tenant_numbers
from caretime.tenancy import service
from caretime.tenancy.auth import (
    PolicyDep,
    TenantDep,
    forget_key_when_committed,
    key_uses_of,
    policies_of,
)
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.schemas import ApiKeyOut, ApiKeyPage, NumbersIn, NumbersOut, TenantOut

router = APIRouter(prefix="/tenants/me", tags=["tenants"])


@router.get(
    "",
    response_model=TenantOut,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "id": "ten_01a2b3c4d5e6f708192a3b4c5d6e7f80",
                        "name": "default",
                        "policy": TenantPolicy().model_dump(mode="json"),
                    }
                }
            }
        }
    },
)
async def get_me(tenant: TenantDep, policy: PolicyDep, runtime: RuntimeDep) -> Response:
    """The tenant the API key belongs to, with its whole policy (defaults spelled out)."""
    # The body TenantOut would render, with the policy's part rendered once per version.
    body = b"".join(
        (
            b'{"id":',
            orjson.dumps(tenant.id),
            b',"name":',
            orjson.dumps(tenant.name),
            b',"policy":',
            policies_of(runtime).as_json(policy),
            b"}",
        )
    )
    return Response(body, media_type="application/json")


POLICY_EXAMPLE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"example": TenantPolicy().model_dump(mode="json")}}}
}


@router.get("/policy", response_model=TenantPolicy, responses=POLICY_EXAMPLE)
async def get_policy(policy: PolicyDep, runtime: RuntimeDep) -> Response:
    """The tenant's policy: calling windows and limits, booking, shift escalation. Every
    default is shown. A policy stored by an older release that no longer validates is a 422
    naming the field."""
    return Response(policies_of(runtime).as_json(policy), media_type="application/json")


@router.patch("/policy")
async def patch_policy(
    tenant: TenantDep,
    session: SessionDep,
    patch: dict[str, Any] = Body(
        description='A JSON merge patch, e.g. {"booking": {"hold": "15m"}}',
        examples=[{"calling": {"windows": {"sat": []}}, "booking": {"hold": "PT15M"}}],
    ),
) -> TenantPolicy:
    """Change the policy with a JSON merge patch (RFC 7396): objects merge key by key and
    keep every key the patch does not name (defaults included), `null` puts a field back to
    its default, anything else replaces. The result is validated as a whole: a 422 names
    each invalid field and nothing is stored."""
    return await service.update_policy(session, tenant.id, patch)


@router.get("/keys")
async def list_keys(tenant: TenantDep, session: SessionDep, runtime: RuntimeDep) -> ApiKeyPage:
    """The tenant's API keys (prefixes only, never the keys), oldest first, on one page.
    `last_used_at` is to the minute (and may lag by a few seconds on another process)."""
    keys = await service.list_keys(session, tenant.id)
    uses = key_uses_of(runtime)
    items = [
        ApiKeyOut.model_validate(key).model_copy(
            update={"last_used_at": uses.shown(key.id, key.last_used_at)}
        )
        for key in keys
    ]
    return ApiKeyPage(items=items, next_cursor=None)


@router.delete("/keys/{key_id}", responses=problems(NotFound))
async def revoke_key(
    key_id: PathText, tenant: TenantDep, session: SessionDep, runtime: RuntimeDep
) -> ApiKeyOut:
    """Revoke an API key by id or by its displayed prefix. Revoking twice keeps the first
    revocation time. A revoked key gets 401 from then on: at once from this process and from
    any route that reads the policy, within CARETIME_KEY_CACHE_SECONDS from every other."""
    key = await service.revoke_key(session, tenant.id, key_id, now=runtime.clock.now())
    forget_key_when_committed(runtime, session, key.id)
    return ApiKeyOut.model_validate(key)


@router.get("/numbers")
async def get_numbers(tenant: TenantDep, session: SessionDep) -> NumbersOut:
    """The numbers this tenant sends from, the sending one first."""
    return NumbersOut(numbers=await tenant_numbers.numbers_of(session, tenant.id))


@router.put("/numbers", responses=problems(Conflict))
async def put_numbers(
    body: NumbersIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> NumbersOut:
    """Replace the numbers this tenant sends from. Twilio messages go out from the first;
    replies to any of them reach this tenant. A number another tenant owns is a 409."""
    numbers = await tenant_numbers.replace_numbers(
        session, tenant.id, body.numbers, now=clock.now()
    )
    return NumbersOut(numbers=numbers)
