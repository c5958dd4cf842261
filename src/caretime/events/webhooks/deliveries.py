"""Deliveries as callers see them: the log of an endpoint (each attempt, never the answer's
body), a retry of one delivery, and a replay of everything since a moment."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Row, Select, false, insert, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import UTCDateTime, locking
from caretime.errors import Conflict, NotFound
from caretime.events.models import Event
from caretime.events.webhooks.endpoints import get_endpoint
from caretime.events.webhooks.models import PENDING, WebhookAttempt, WebhookDelivery
from caretime.events.webhooks.outbox import wake_pump
from caretime.events.webhooks.patterns import EVERYTHING
from caretime.events.webhooks.schemas import AttemptOut, DeliveryOut


class DeliveryNotFound(NotFound):
    problem = "webhook-delivery-not-found"
    title = "No such webhook delivery"


class EndpointDisabled(Conflict):
    problem = "webhook-endpoint-disabled"
    title = "The webhook endpoint is disabled"


async def list_deliveries(
    session: AsyncSession,
    tenant_id: str,
    endpoint_id: str,
    *,
    status: str | None,
    limit: int,
    before: int | None,
) -> tuple[list[DeliveryOut], str | None]:
    """Newest first (a log), `before` a delivery id from the previous page."""
    await get_endpoint(session, tenant_id, endpoint_id)
    statement = _with_event().where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if before is not None:
        statement = statement.where(WebhookDelivery.id < before)
    rows = list((await session.execute(
        statement.order_by(WebhookDelivery.id.desc()).limit(limit + 1)
    )).all())  # fmt: skip
    page = await _present(session, rows[:limit])
    return page, str(rows[limit - 1][0].id) if len(rows) > limit else None


async def get_delivery(session: AsyncSession, tenant_id: str, delivery_id: int) -> DeliveryOut:
    row = (await session.execute(_with_event().where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id == delivery_id
    ))).first()  # fmt: skip
    if row is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
    return (await _present(session, [row]))[0]


async def retry(
    session: AsyncSession, tenant_id: str, delivery_id: int, *, now: datetime
) -> DeliveryOut:
    """Send again now, whatever its status; it gets a fresh 3-day window of retries."""
    delivery = await session.scalar(
        locking(
            select(WebhookDelivery).where(
                WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id == delivery_id
            )
        )
    )
    if delivery is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
    endpoint = await get_endpoint(session, tenant_id, delivery.endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled(f"endpoint {endpoint.id} is disabled; enable it to retry")
    delivery.status, delivery.next_attempt_at = PENDING, now
    delivery.created_at, delivery.finished_at = now, None
    await wake_pump(session, tenant_id, endpoint.id, at=now)
    await session.flush()
    return await get_delivery(session, tenant_id, delivery_id)


async def replay(
    session: AsyncSession, tenant_id: str, endpoint_id: str, *, since: datetime, now: datetime
) -> int:
    """A new delivery of every event since `since` that the endpoint wants, in event order."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled(f"endpoint {endpoint.id} is disabled; enable it to replay")
    rows = select(
        literal(tenant_id), literal(endpoint.id), Event.seq,
        Event.subject_kind + ":" + Event.subject_id, literal(PENDING), literal(0),
        literal(now, UTCDateTime()), literal(now, UTCDateTime()),
    ).where(
        Event.tenant_id == tenant_id, Event.occurred_at >= since, wanted(endpoint.event_types)
    ).order_by(Event.seq)  # fmt: skip
    columns = ["tenant_id", "endpoint_id", "event_seq", "subject", "status", "attempts"]
    result = await session.execute(
        insert(WebhookDelivery).from_select([*columns, "next_attempt_at", "created_at"], rows)
    )
    await wake_pump(session, tenant_id, endpoint.id, at=now)
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


def wanted(patterns: Sequence[str]) -> ColumnElement[bool]:
    """The endpoint's patterns as a condition on Event.type."""
    if EVERYTHING in patterns:
        return true()
    conditions = [
        Event.type.startswith(p[:-1]) if p.endswith(".*") else Event.type == p for p in patterns
    ]
    return or_(false(), *conditions)


def _with_event() -> Select[WebhookDelivery, str, str]:
    return select(WebhookDelivery, Event.id, Event.type).join(
        Event, Event.seq == WebhookDelivery.event_seq
    )


async def _present(
    session: AsyncSession, rows: Sequence[Row[WebhookDelivery, str, str]]
) -> list[DeliveryOut]:
    attempts = await _attempts_of(session, [d.id for d, _, _ in rows])
    return [
        DeliveryOut(
            id=d.id,
            endpoint_id=d.endpoint_id,
            event_id=event_id,
            event_type=event_type,
            subject=d.subject,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == PENDING else None,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            finished_at=d.finished_at,
            attempt_log=attempts.get(d.id, []),
        )
        for d, event_id, event_type in rows
    ]


async def _attempts_of(session: AsyncSession, ids: list[int]) -> dict[int, list[AttemptOut]]:
    if not ids:
        return {}
    found = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
    )
    grouped: dict[int, list[AttemptOut]] = defaultdict(list)
    for a in found.all():
        grouped[a.delivery_id].append(
            AttemptOut(
                number=a.number,
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
        )
    return grouped
