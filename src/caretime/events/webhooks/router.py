"""HTTP: webhook endpoints (CRUD), their delivery log, retry and replay. Thin: services work."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from caretime.deps import ClockDep, SessionDep, SettingsDep
from caretime.events.webhooks import deliveries, endpoints
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
from caretime.tenancy.auth import TenantDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
EndpointId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
DeliveryId = Annotated[int, Path(ge=1)]


@router.post("/endpoints", status_code=status.HTTP_201_CREATED)
async def create_endpoint(
    body: EndpointIn, tenant: TenantDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> EndpointCreated:
    created = await endpoints.create_endpoint(
        session, tenant.id, body, env=settings.env, now=clock.now()
    )
    return EndpointCreated.model_validate(created, from_attributes=True)


@router.get("/endpoints")
async def list_endpoints(tenant: TenantDep, session: SessionDep) -> EndpointPage:
    found = await endpoints.list_endpoints(session, tenant.id)
    return EndpointPage(items=[EndpointOut.model_validate(e) for e in found])


@router.get("/endpoints/{endpoint_id}")
async def get_endpoint(
    endpoint_id: EndpointId, tenant: TenantDep, session: SessionDep
) -> EndpointOut:
    return EndpointOut.model_validate(await endpoints.get_endpoint(session, tenant.id, endpoint_id))


@router.patch("/endpoints/{endpoint_id}")
async def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointPatch,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> EndpointOut:
    changed = await endpoints.update_endpoint(
        session, tenant.id, endpoint_id, body, env=settings.env, now=clock.now()
    )
    return EndpointOut.model_validate(changed)


@router.delete("/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(
    endpoint_id: EndpointId, tenant: TenantDep, session: SessionDep
) -> Response:
    await endpoints.delete_endpoint(session, tenant.id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/endpoints/{endpoint_id}/deliveries")
async def list_deliveries(
    endpoint_id: EndpointId,
    tenant: TenantDep,
    session: SessionDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of a page")] = None,
) -> DeliveryPage:
    items, next_cursor = await deliveries.list_deliveries(
        session, tenant.id, endpoint_id, status=status, limit=limit, before=cursor
    )
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post("/endpoints/{endpoint_id}/replay", status_code=status.HTTP_202_ACCEPTED)
async def replay(
    endpoint_id: EndpointId,
    since: Annotated[datetime, Query(description="Re-send every wanted event since (ISO 8601)")],
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> Replayed:
    count = await deliveries.replay(session, tenant.id, endpoint_id, since=since, now=clock.now())
    return Replayed(replayed=count)


@router.get("/deliveries/{delivery_id}")
async def get_delivery(
    delivery_id: DeliveryId, tenant: TenantDep, session: SessionDep
) -> DeliveryOut:
    return await deliveries.get_delivery(session, tenant.id, delivery_id)


@router.post("/deliveries/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry(
    delivery_id: DeliveryId, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> DeliveryOut:
    return await deliveries.retry(session, tenant.id, delivery_id, now=clock.now())
