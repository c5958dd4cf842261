"""From events to deliveries, in the emitting transaction: one row per (event, endpoint that
wants it), and a live delivery job per endpoint.

Each endpoint has at most one delivery job (its pump, dedupe key `webhooks.endpoint:{id}`).
An emitter locks the endpoints it reads FOR KEY SHARE until it commits; a pump locks its
endpoint FOR UPDATE before it decides whether work is left. So a pump either sees an
emitter's deliveries or runs its final check after the emitter committed, and the emitter
then finds the pump queued (and pulls it forward) or finished (and enqueues a new one): no
delivery is ever stranded without a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.db import UTCDateTime
from caretime.dispatch import enqueue, reschedule
from caretime.events.models import Event
from caretime.events.webhooks.models import PENDING, WebhookDelivery, WebhookEndpoint
from caretime.events.webhooks.patterns import matches

DELIVER = "webhooks.deliver"
# A pump that keeps failing on a bug retries a few times; the next event enqueues a new one.
PUMP_MAX_ATTEMPTS = 20


def pump_key(endpoint_id: str) -> str:
    return f"webhooks.endpoint:{endpoint_id}"


async def subscribed_endpoints(session: AsyncSession, tenant_id: str, event_type: str) -> list[str]:
    """The tenant's enabled endpoints that want this type, locked against their pump's last
    check until this transaction ends (FOR KEY SHARE: emitters never block each other)."""
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
        .with_for_update(read=True, key_share=True)
    )
    return [id_ for id_, patterns in rows.all() if matches(patterns, event_type)]


async def deliver_events(
    session: AsyncSession,
    tenant_id: str,
    endpoint_ids: Sequence[str],
    event_ids: Sequence[str],
    *,
    now: datetime,
) -> None:
    """One delivery per (event, endpoint) in one statement, then wake each endpoint's pump."""
    if not endpoint_ids or not event_ids:
        return
    rows = (
        select(
            literal(tenant_id).label("tenant_id"),
            WebhookEndpoint.id,
            Event.seq,
            (Event.subject_kind + ":" + Event.subject_id).label("subject"),
            literal(PENDING).label("status"),
            literal(0).label("attempts"),
            literal(now, UTCDateTime()).label("next_attempt_at"),
            literal(now, UTCDateTime()).label("created_at"),
        )
        .select_from(Event)
        .join(WebhookEndpoint, true())  # every event with every endpoint that wants it
        .where(
            Event.tenant_id == tenant_id,
            WebhookEndpoint.tenant_id == tenant_id,
            WebhookEndpoint.id.in_(list(endpoint_ids)),
        )
    )
    rows = where_one_of(session, rows, Event.id, event_ids)
    columns = ["tenant_id", "endpoint_id", "event_seq", "subject", "status", "attempts"]
    columns += ["next_attempt_at", "created_at"]
    await session.execute(insert(WebhookDelivery).from_select(columns, rows))
    for endpoint_id in endpoint_ids:
        await wake_pump(session, tenant_id, endpoint_id, at=now)


async def wake_pump(
    session: AsyncSession, tenant_id: str, endpoint_id: str, *, at: datetime
) -> None:
    """Make sure the endpoint's pump runs by `at`: enqueue it, or pull a queued one forward."""
    job = await enqueue(
        session,
        DELIVER,
        {"endpoint_id": endpoint_id},
        run_at=at,
        tenant_id=tenant_id,
        dedupe_key=pump_key(endpoint_id),
        max_attempts=PUMP_MAX_ATTEMPTS,
    )
    if job.status == "queued" and job.run_at > at:
        await reschedule(session, job.id, at)
