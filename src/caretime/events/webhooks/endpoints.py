"""Webhook endpoints per tenant: create (the secret is returned once), read, change, delete."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.destinations import check_url
from caretime.dispatch import cancel_by_dedupe_key
from caretime.errors import InvalidInput, NotFound
from caretime.events.webhooks.models import WebhookEndpoint
from caretime.events.webhooks.outbox import pump_key, wake_pump
from caretime.events.webhooks.patterns import unknown_patterns, valid_patterns_hint
from caretime.events.webhooks.schemas import EndpointIn, EndpointPatch
from caretime.events.webhooks.signing import new_secret
from caretime.ids import new_id


class EndpointNotFound(NotFound):
    problem = "webhook-endpoint-not-found"
    title = "No such webhook endpoint"


def check_patterns(
    patterns: Sequence[str], *, loc: tuple[str, str] = ("body", "event_types")
) -> list[str]:
    unknown = unknown_patterns(patterns)
    if unknown:
        detail = f"unknown event types {unknown}; valid: {valid_patterns_hint()}"
        raise InvalidInput(detail, errors=[{"loc": list(loc), "msg": detail}])
    return list(dict.fromkeys(patterns))


async def create_endpoint(
    session: AsyncSession, tenant_id: str, body: EndpointIn, *, env: str, now: datetime
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        tenant_id=tenant_id,
        url=await check_url(body.url, env=env),
        description=body.description,
        event_types=check_patterns(body.event_types),
        secret=new_secret(),
        enabled=body.enabled,
        rate_limit=body.rate_limit,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(session: AsyncSession, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.tenant_id != tenant_id:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id!r}")
    return endpoint


async def list_endpoints(session: AsyncSession, tenant_id: str) -> Sequence[WebhookEndpoint]:
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.id)
    )
    return rows.all()


async def update_endpoint(
    session: AsyncSession,
    tenant_id: str,
    endpoint_id: str,
    patch: EndpointPatch,
    *,
    env: str,
    now: datetime,
) -> WebhookEndpoint:
    """Everything is checked before anything changes; enabling again resumes delivery."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    changes = patch.model_dump(exclude_unset=True)
    if patch.url is not None:
        changes["url"] = await check_url(patch.url, env=env)
    if patch.event_types is not None:
        changes["event_types"] = check_patterns(patch.event_types)
    resuming = changes.get("enabled") is True and not endpoint.enabled
    for name, value in changes.items():
        if value is not None or name == "rate_limit":  # only the rate limit can be removed
            setattr(endpoint, name, value)
    if resuming:
        endpoint.disabled_reason, endpoint.failing_since = None, None
        await wake_pump(session, tenant_id, endpoint.id, at=now)
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, tenant_id: str, endpoint_id: str) -> None:
    """Its deliveries and their attempts go with it."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    await cancel_by_dedupe_key(session, tenant_id, pump_key(endpoint.id))
    await session.delete(endpoint)
    await session.flush()
