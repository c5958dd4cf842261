"""Webhooks: the tenant's endpoints, add one (its secret shown once), remove one, each
endpoint's recent deliveries with their outcome, and retry one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from starlette.responses import RedirectResponse, Response

from caretime.deps import ClockDep, SessionDep, SettingsDep
from caretime.events.webhooks import deliveries, endpoints
from caretime.events.webhooks.patterns import valid_patterns_hint
from caretime.events.webhooks.schemas import EndpointIn, EndpointPatch
from caretime.web.auth import ActorDep, ViewerDep
from caretime.web.forms import build
from caretime.web.routing import web_router

router = web_router()
RECENT = 50


@router.get("/ui/webhooks")
async def webhooks_page(viewer: ViewerDep, db: SessionDep) -> Response:
    found = await endpoints.list_endpoints(db, viewer.tenant_id)
    return viewer.render("webhooks.html", endpoints=found, hint=valid_patterns_hint())


@router.post("/ui/webhooks")
async def add_endpoint(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    url: Annotated[str, Form()],
    event_types: Annotated[str, Form()] = "*",
    description: Annotated[str, Form()] = "",
) -> Response:
    """Rendered, not redirected: the secret is on this one page and never again."""
    patterns = [p.strip() for p in event_types.split(",") if p.strip()] or ["*"]
    body = build(EndpointIn, {"url": url, "event_types": patterns, "description": description})
    created = await endpoints.create_endpoint(
        db, viewer.tenant_id, body, env=settings.env, now=clock.now()
    )
    found = await endpoints.list_endpoints(db, viewer.tenant_id)
    return viewer.render(
        "webhooks.html", endpoints=found, hint=valid_patterns_hint(), created=created
    )


@router.post("/ui/webhooks/{endpoint_id}/delete")
async def remove_endpoint(viewer: ActorDep, db: SessionDep, endpoint_id: str) -> Response:
    await endpoints.delete_endpoint(db, viewer.tenant_id, endpoint_id)
    return RedirectResponse("/ui/webhooks", status_code=303)


@router.post("/ui/webhooks/{endpoint_id}/enabled")
async def set_enabled(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    endpoint_id: str,
    enabled: Annotated[bool, Form()],
) -> Response:
    patch = EndpointPatch(enabled=enabled)
    await endpoints.update_endpoint(
        db, viewer.tenant_id, endpoint_id, patch, env=settings.env, now=clock.now()
    )
    return RedirectResponse(f"/ui/webhooks/{endpoint_id}", status_code=303)


@router.get("/ui/webhooks/{endpoint_id}")
async def endpoint_page(viewer: ViewerDep, db: SessionDep, endpoint_id: str) -> Response:
    endpoint = await endpoints.get_endpoint(db, viewer.tenant_id, endpoint_id)
    recent, _ = await deliveries.list_deliveries(
        db, viewer.tenant_id, endpoint_id, status=None, limit=RECENT, before=None
    )
    return viewer.render("webhook.html", endpoint=endpoint, deliveries=recent)


@router.post("/ui/webhooks/deliveries/{delivery_id}/retry")
async def retry_delivery(
    viewer: ActorDep, db: SessionDep, clock: ClockDep, delivery_id: int
) -> Response:
    retried = await deliveries.retry(db, viewer.tenant_id, delivery_id, now=clock.now())
    return RedirectResponse(f"/ui/webhooks/{retried.endpoint_id}", status_code=303)
