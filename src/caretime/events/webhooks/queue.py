"""The delivery queue's queries: what is due for an endpoint (the oldest pending delivery of
each subject only, so a subject's events arrive in order) and when it next has work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from caretime.events.models import Event
from caretime.events.present import event_document
from caretime.events.webhooks.models import PENDING, WebhookDelivery, WebhookEndpoint
from caretime.events.webhooks.sending import Outgoing, Target
from caretime.events.webhooks.signing import body_of


async def load_target(session: AsyncSession, tenant_id: str, endpoint_id: str) -> Target | None:
    """The endpoint to deliver to, if it exists and is enabled."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.tenant_id != tenant_id or not endpoint.enabled:
        return None
    return Target(endpoint.id, endpoint.url, endpoint.secret, endpoint.rate_limit)


def _earlier_pending() -> object:
    earlier = aliased(WebhookDelivery)
    return exists().where(
        earlier.endpoint_id == WebhookDelivery.endpoint_id,
        earlier.status == PENDING,
        earlier.subject == WebhookDelivery.subject,
        or_(
            earlier.event_seq < WebhookDelivery.event_seq,
            and_(earlier.event_seq == WebhookDelivery.event_seq, earlier.id < WebhookDelivery.id),
        ),
    )


async def due(
    session: AsyncSession, target: Target, *, now: datetime, limit: int
) -> list[tuple[WebhookDelivery, Outgoing]]:
    """Due deliveries whose subject has no earlier one pending, oldest event first."""
    blocked = _earlier_pending()
    rows = await session.execute(
        select(WebhookDelivery, Event)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(
            WebhookDelivery.endpoint_id == target.id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            ~blocked,  # type: ignore[operator]
        )
        .order_by(WebhookDelivery.event_seq, WebhookDelivery.id)
        .limit(limit)
    )
    return [(d, Outgoing(d.id, e.id, body_of(event_document(e)))) for d, e in rows.all()]


async def next_due(session: AsyncSession, endpoint_id: str) -> datetime | None:
    """When the endpoint's next sendable delivery is due (one waiting behind an earlier one
    of its subject is not sendable: the earlier one's time counts)."""
    earliest: datetime | None = await session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(  # type: ignore[arg-type]
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == PENDING,
            ~_earlier_pending(),  # type: ignore[operator]
        )
    )
    return earliest


async def lock_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    """FOR UPDATE: waits for emitters still writing deliveries for it (see outbox)."""
    found = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return found.first()
