"""HTTP: webhook endpoints (CRUD), their delivery log, retry and replay. Thin: services work."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from caretime.deps import ClockDep, SessionDep, SettingsDep
from caretime.events.webhooks import deliveries, endpoints
from caretime.events.webhooks.deliveries import DeliveryNotFound, EndpointDisabled
from caretime.events.webhooks.endpoints import EndpointNotFound
from caretime.events.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    Replayed,
)
from caretime.openapi import problems
from caretime.tenancy.auth import TenantDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
EndpointId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
DeliveryId = Annotated[int, Path(ge=1)]


@router.post("/endpoints", status_code=status.HTTP_201_CREATED)
async def create_endpoint(
    body: EndpointIn, tenant: TenantDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> EndpointCreated:
    """Add an endpoint that receives this tenant's events, signed with the Standard Webhooks
    scheme. The answer carries the signing secret (`whsec_...`) once: store it now. The URL must
    be https outside development, without credentials, and not a link-local address."""
    created = await endpoints.create_endpoint(
        session, tenant.id, body, env=settings.env, now=clock.now()
    )
    return EndpointCreated.model_validate(created, from_attributes=True)


@router.get("/endpoints")
async def list_endpoints(tenant: TenantDep, session: SessionDep) -> EndpointPage:
    """Every webhook endpoint of this tenant, enabled or not (secrets are never shown again)."""
    found = await endpoints.list_endpoints(session, tenant.id)
    return EndpointPage(items=[EndpointOut.model_validate(e) for e in found])


@router.get("/endpoints/{endpoint_id}", responses=problems(EndpointNotFound))
async def get_endpoint(
    endpoint_id: EndpointId, tenant: TenantDep, session: SessionDep
) -> EndpointOut:
    """One webhook endpoint: its URL, event types, whether it is enabled and since when it fails."""
    return EndpointOut.model_validate(await endpoints.get_endpoint(session, tenant.id, endpoint_id))


@router.patch("/endpoints/{endpoint_id}", responses=problems(EndpointNotFound))
async def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointPatch,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> EndpointOut:
    """Change an endpoint's URL, event types, description, rate limit, or enable it again
    (a disabled endpoint resumes with the deliveries still pending)."""
    changed = await endpoints.update_endpoint(
        session, tenant.id, endpoint_id, body, env=settings.env, now=clock.now()
    )
    return EndpointOut.model_validate(changed)


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(EndpointNotFound),
)
async def delete_endpoint(
    endpoint_id: EndpointId, tenant: TenantDep, session: SessionDep
) -> Response:
    """Remove an endpoint; its pending deliveries are dropped."""
    await endpoints.delete_endpoint(session, tenant.id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/endpoints/{endpoint_id}/deliveries", responses=problems(EndpointNotFound))
async def list_deliveries(
    endpoint_id: EndpointId,
    tenant: TenantDep,
    session: SessionDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of a page")] = None,
) -> DeliveryPage:
    """An endpoint's deliveries, newest first, with each attempt's status code, latency and
    error (never the body of the receiver's answer)."""
    items, next_cursor = await deliveries.list_deliveries(
        session, tenant.id, endpoint_id, status=status, limit=limit, before=cursor
    )
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(EndpointNotFound, EndpointDisabled),
)
async def replay(
    endpoint_id: EndpointId,
    since: Annotated[datetime, Query(description="Re-send every wanted event since (ISO 8601)")],
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> Replayed:
    """Send again every event since `since` that this endpoint wants, in order per subject."""
    count = await deliveries.replay(session, tenant.id, endpoint_id, since=since, now=clock.now())
    return Replayed(replayed=count)


@router.get("/deliveries/{delivery_id}", responses=problems(DeliveryNotFound))
async def get_delivery(
    delivery_id: DeliveryId, tenant: TenantDep, session: SessionDep
) -> DeliveryOut:
    """One delivery of one event to one endpoint, with its attempts."""
    return await deliveries.get_delivery(session, tenant.id, delivery_id)


@router.post(
    "/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(DeliveryNotFound, EndpointDisabled),
)
async def retry(
    delivery_id: DeliveryId, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> DeliveryOut:
    """Try a delivery again now, with a fresh retry window (also after it failed)."""
    return await deliveries.retry(session, tenant.id, delivery_id, now=clock.now())
