"""Endpoints for what a provider offers beyond time: visit types and per-day limits."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from caretime.booking import service, visit_types
from caretime.booking.schemas import ProviderOut, ProviderPatch, VisitTypeIn, VisitTypeOut
from caretime.deps import ClockDep, SessionDep
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["booking"])


@router.patch("/providers/{provider_id}")
async def patch_provider(
    provider_id: str, body: ProviderPatch, tenant: TenantDep, session: SessionDep
) -> ProviderOut:
    provider = await service.set_limits(session, tenant.id, provider_id, body)
    return ProviderOut.model_validate(provider)


@router.post("/providers/{provider_id}/visit-types", status_code=status.HTTP_201_CREATED)
async def create_visit_type(
    provider_id: str, body: VisitTypeIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> VisitTypeOut:
    row = await visit_types.create(session, tenant.id, provider_id, body, now=clock.now())
    return VisitTypeOut.model_validate(row)


@router.get("/providers/{provider_id}/visit-types")
async def list_visit_types(
    provider_id: str, tenant: TenantDep, session: SessionDep
) -> list[VisitTypeOut]:
    rows = await visit_types.list_for(session, tenant.id, provider_id)
    return [VisitTypeOut.model_validate(row) for row in rows]


@router.delete(
    "/providers/{provider_id}/visit-types/{visit_type_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_visit_type(
    provider_id: str, visit_type_id: str, tenant: TenantDep, session: SessionDep
) -> Response:
    await visit_types.remove(session, tenant.id, provider_id, visit_type_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
