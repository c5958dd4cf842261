"""emit(): one event row in the caller's transaction, so it exists exactly when the change does.

The same transaction writes a delivery for each webhook endpoint that wants the event (the
outbox), so a delivery exists exactly when its event does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import Documents, insert_rows
from caretime.events.actor import current_actor
from caretime.events.catalogue import is_known
from caretime.events.models import Event
from caretime.events.webhooks.outbox import deliver_events, subscribed_endpoints
from caretime.ids import new_id, new_ids


async def emit(
    session: AsyncSession,
    *,
    tenant_id: str,
    type: str,
    subject: tuple[str, str],
    data: dict[str, Any],
    now: datetime,
) -> Event:
    """Record a change. `data` is a PHI-minimal snapshot of the subject after the change."""
    _check_known(type)
    kind, subject_id = subject
    event = Event(
        id=new_id("evt"),
        tenant_id=tenant_id,
        type=type,
        occurred_at=now,
        subject_kind=kind,
        subject_id=subject_id,
        data=data,
        actor=current_actor(),
    )
    endpoints = await subscribed_endpoints(session, tenant_id, type)
    session.add(event)
    await session.flush()
    await deliver_events(session, tenant_id, endpoints, [event.id], now=now)
    return event


async def emit_many(
    session: AsyncSession,
    *,
    tenant_id: str,
    type: str,
    subjects: tuple[str, list[str]],
    data: list[dict[str, Any]] | Documents,
    now: datetime,
) -> None:
    """Record one change of the same type to many subjects of one kind (a batch of calls, a
    fan-out's offers) in one statement; `data[i]` belongs to `subjects[1][i]`. A batch whose
    snapshots share one shape passes them as `Documents`: on PostgreSQL the server builds
    them (the bulk path of POST /schedule: 10,000 snapshots a batch)."""
    _check_known(type)
    kind, ids = subjects
    if not ids:
        return
    endpoints = await subscribed_endpoints(session, tenant_id, type)
    event_ids = new_ids("evt", len(ids))
    await insert_rows(
        session,
        Event,
        {"id": event_ids, "subject_id": ids, "data": data},
        shared={
            "tenant_id": tenant_id,
            "type": type,
            "occurred_at": now,
            "subject_kind": kind,
            "actor": current_actor(),
        },
    )
    await deliver_events(session, tenant_id, endpoints, event_ids, now=now)


def _check_known(event_type: str) -> None:
    if not is_known(event_type):
        raise ValueError(f"event type {event_type!r} is not in the catalogue")
