"""emit(): one event row in the caller's transaction, so it exists exactly when the change does.

The same transaction writes a delivery for each webhook endpoint that wants the event (the
outbox), so a delivery exists exactly when its event does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import Documents, PreparedInsert, insert_rows, prepared_insert, run_prepared
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
    if not subjects[1]:
        return
    endpoints = await subscribed_endpoints(session, tenant_id, type)
    rows = _event_rows(tenant_id, type, subjects, data, now=now, actor=current_actor())
    await insert_rows(session, Event, rows.columns, shared=rows.shared)
    await deliver_events(session, tenant_id, endpoints, rows.ids, now=now)


@dataclass(frozen=True)
class PreparedEvents:
    """`emit_many`'s events as a PostgreSQL statement built ahead, without a session
    (`bulk.PreparedInsert`); `emit_prepared` records them."""

    type: str
    ids: list[str]
    insert: PreparedInsert


def prepare_many(
    split: str,
    *,
    tenant_id: str,
    type: str,
    subjects: tuple[str, list[str]],
    data: Documents,
    now: datetime,
    actor: str,
) -> PreparedEvents:
    """`emit_many`'s statement for at least one subject, for `emit_prepared` (`split`: the
    session's `bulk_text.splitter`; `actor`: `current_actor()` of the change)."""
    _check_known(type)
    rows = _event_rows(tenant_id, type, subjects, data, now=now, actor=actor)
    return PreparedEvents(
        type, rows.ids, prepared_insert(split, Event, rows.columns, shared=rows.shared)
    )


async def emit_prepared(
    session: AsyncSession, tenant_id: str, events: PreparedEvents, *, now: datetime
) -> None:
    """Record the events `prepare_many` built, as `emit_many` would have."""
    endpoints = await subscribed_endpoints(session, tenant_id, events.type)
    await run_prepared(session, events.insert)
    await deliver_events(session, tenant_id, endpoints, events.ids, now=now)


class _EventRows(NamedTuple):
    ids: list[str]
    columns: dict[str, Any]
    shared: dict[str, Any]


def _event_rows(
    tenant_id: str,
    type: str,
    subjects: tuple[str, list[str]],
    data: list[dict[str, Any]] | Documents,
    *,
    now: datetime,
    actor: str,
) -> _EventRows:
    kind, subject_ids = subjects
    ids = new_ids("evt", len(subject_ids))
    shared = {"tenant_id": tenant_id, "type": type, "occurred_at": now, "subject_kind": kind,
              "actor": actor}  # fmt: skip
    return _EventRows(ids, {"id": ids, "subject_id": subject_ids, "data": data}, shared)


def _check_known(event_type: str) -> None:
    if not is_known(event_type):
        raise ValueError(f"event type {event_type!r} is not in the catalogue")
