"""Endpoints for what a provider offers beyond time: visit types and per-day limits."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from caretime.booking import service, visit_types
from caretime.booking.errors import ProviderNotFound, VisitTypeExists, VisitTypeNotFound
from caretime.booking.schemas import ProviderOut, ProviderPatch, VisitTypeIn, VisitTypeOut
from caretime.deps import ClockDep, SessionDep
from caretime.openapi import problems
from caretime.storable import PathText
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["booking"])


@router.patch("/providers/{provider_id}", responses=problems(ProviderNotFound))
async def patch_provider(
    provider_id: PathText, body: ProviderPatch, tenant: TenantDep, session: SessionDep
) -> ProviderOut:
    """Set a provider's limits: `max_per_day` active visits per local day (null: no limit).
    Visits already booked stay; the limit only refuses new ones."""
    provider = await service.set_limits(session, tenant.id, provider_id, body)
    return ProviderOut.model_validate(provider)


@router.post(
    "/providers/{provider_id}/visit-types",
    status_code=status.HTTP_201_CREATED,
    responses=problems(ProviderNotFound, VisitTypeExists),
)
async def create_visit_type(
    provider_id: PathText,
    body: VisitTypeIn,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> VisitTypeOut:
    """Offer a visit type at a provider: its length (15, 30, 45 or 60 minutes) and the
    buffers kept free before and after it. An id the provider already offers is a 409."""
    row = await visit_types.create(session, tenant.id, provider_id, body, now=clock.now())
    return VisitTypeOut.model_validate(row)


@router.get("/providers/{provider_id}/visit-types", responses=problems(ProviderNotFound))
async def list_visit_types(
    provider_id: PathText, tenant: TenantDep, session: SessionDep
) -> list[VisitTypeOut]:
    """The visit types a provider offers."""
    rows = await visit_types.list_for(session, tenant.id, provider_id)
    return [VisitTypeOut.model_validate(row) for row in rows]


@router.delete(
    "/providers/{provider_id}/visit-types/{visit_type_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(ProviderNotFound, VisitTypeNotFound),
)
async def delete_visit_type(
    provider_id: PathText, visit_type_id: PathText, tenant: TenantDep, session: SessionDep
) -> Response:
    """Stop offering a visit type; visits already booked with it keep their times."""
    await visit_types.remove(session, tenant.id, provider_id, visit_type_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
