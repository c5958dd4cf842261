"""Status tracking: provider events recorded in arrival order, statuses that only move
forward, and the listeners domains register for changes to their messages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from caretime.bulk import insert_rows, update_rows, where_one_of
from caretime.messaging.models import Message, MessageEvent, TrackedMessage
from caretime.messaging.statuses import moves_forward

StatusListener = Callable[[AsyncSession, Message, str], Awaitable[None]]
# (message, new status) pairs: one call for all the changes one transaction records.
StatusChanges = Sequence[tuple[Message, str]]
BulkStatusListener = Callable[[AsyncSession, StatusChanges], Awaitable[None]]
_listeners: dict[str, list[StatusListener]] = defaultdict(list)
_bulk_listeners: dict[str, list[BulkStatusListener]] = defaultdict(list)


def on_status_change(related_kind: str) -> Callable[[StatusListener], StatusListener]:
    """Register `async def listener(session, message, status)` for messages whose
    related.kind is `related_kind`; it runs in the transaction that records the change."""

    def register(listener: StatusListener) -> StatusListener:
        if listener not in _listeners[related_kind]:
            _listeners[related_kind].append(listener)
        return listener

    return register


def on_status_changes(related_kind: str) -> Callable[[BulkStatusListener], BulkStatusListener]:
    """Register `async def listener(session, changes)` for messages whose related.kind is
    `related_kind`: `changes` holds every (message, status) a transaction records at once
    (a batch hand-over records hundreds), so the listener can write them in bulk. It runs in
    that transaction, like `on_status_change` listeners."""

    def register(listener: BulkStatusListener) -> BulkStatusListener:
        if listener not in _bulk_listeners[related_kind]:
            _bulk_listeners[related_kind].append(listener)
        return listener

    return register


def remove_bulk_status_listener(related_kind: str, listener: BulkStatusListener) -> None:
    if listener in _bulk_listeners.get(related_kind, []):
        _bulk_listeners[related_kind].remove(listener)


def remove_status_listener(related_kind: str, listener: StatusListener) -> None:
    if listener in _listeners.get(related_kind, []):
        _listeners[related_kind].remove(listener)


async def record_event(
    session: AsyncSession,
    message: Message,
    *,
    source: str,
    status: str | None,
    provider_status: str | None,
    raw: dict[str, Any],
    now: datetime,
    error: str | None = None,
) -> bool:
    """Store a provider event and apply its status if it moves the message forward."""
    applied = status is not None and moves_forward(message.channel, message.status, status)
    session.add(
        MessageEvent(
            tenant_id=message.tenant_id,
            message_id=message.id,
            source=source,
            provider_status=(provider_status or "")[:32] or None,
            status=status,
            applied=applied,
            payload=raw,
            received_at=now,
        )
    )
    if applied and status is not None:
        await change_status(session, message, status, now=now, error=error)
    else:
        await session.flush()
    return applied


@dataclass(frozen=True)
class StatusEvent:
    """One provider event for `record_events`: what `record_event` takes, for many messages."""

    message: TrackedMessage
    source: str
    status: str | None
    provider_status: str | None
    raw: dict[str, Any]
    error: str | None = None


async def record_events(
    session: AsyncSession,
    events: Sequence[StatusEvent],
    *,
    now: datetime,
    with_columns: Sequence[str] = (),
) -> None:
    """`record_event` for many messages: the status updates in one UPDATE and the event rows
    in one INSERT; the listeners then run for each status that was applied.

    `with_columns` names attributes the caller has set in memory (`store_in_memory`) on the
    events' messages, whose rows it holds locked: they go in the same UPDATE (a hand-over's
    provider id), which then rewrites every event's message rather than only those whose
    status moved."""
    changed: list[TrackedMessage] = []
    applied: list[bool] = []
    for event in events:
        message = event.message
        applied.append(
            event.status is not None
            and moves_forward(message.channel, message.status, event.status)
        )
        if applied[-1] and event.status is not None:
            changed.append(message)
            values = {"status": event.status, "status_changed_at": now, "updated_at": now}
            store_in_memory(
                message, values if event.error is None else {**values, "error": event.error}
            )
    await session.flush()  # what else changed on these messages goes first
    if with_columns:
        written = [event.message for event in events]
        await store_columns(session, written, (*_STATUS_COLUMNS, "error", *with_columns))
    else:
        await _store_statuses(session, changed)
    await insert_rows(
        session, MessageEvent, _event_columns(events, applied), shared={"received_at": now}
    )
    await _announce(session, [(message, message.status) for message in changed])


def store_in_memory(message: TrackedMessage, values: dict[str, Any]) -> None:
    """Set attributes as if loaded from the database: the caller writes them itself, in bulk
    (a flush would send one UPDATE per message)."""
    if isinstance(message, Message):
        for name, value in values.items():
            set_committed_value(message, name, value)
        return
    for name, value in values.items():
        setattr(message, name, value)


async def store_columns(
    session: AsyncSession, messages: Sequence[TrackedMessage], names: Sequence[str]
) -> None:
    """Write these attributes of these messages, as they are in memory, in one UPDATE."""
    unique = list({message.id: message for message in messages}.values())  # a row once
    columns = {name: [getattr(m, name) for m in unique] for name in ("id", *names)}
    await update_rows(session, Message, "id", columns)


_STATUS_COLUMNS = ("status", "status_changed_at", "updated_at")


async def _store_statuses(session: AsyncSession, changed: Sequence[TrackedMessage]) -> None:
    await store_columns(session, changed, _STATUS_COLUMNS)
    failed = [message for message in changed if message.error is not None]
    await store_columns(session, failed, ("error",))


def _event_columns(events: Sequence[StatusEvent], applied: list[bool]) -> dict[str, list[Any]]:
    return {
        "tenant_id": [event.message.tenant_id for event in events],
        "message_id": [event.message.id for event in events],
        "source": [event.source for event in events],
        "provider_status": [(event.provider_status or "")[:32] or None for event in events],
        "status": [event.status for event in events],
        "applied": applied,
        "payload": [event.raw for event in events],
    }


async def change_status(
    session: AsyncSession, message: Message, status: str, *, now: datetime, error: str | None = None
) -> None:
    _set_status(message, status, now=now, error=error)
    await session.flush()
    await _announce(session, [(message, status)])


def _set_status(message: Message, status: str, *, now: datetime, error: str | None) -> None:
    message.status = status
    message.status_changed_at = now
    message.updated_at = now
    if error is not None:
        message.error = error


async def _announce(session: AsyncSession, changes: Sequence[tuple[TrackedMessage, str]]) -> None:
    by_kind: dict[str, list[tuple[TrackedMessage, str]]] = defaultdict(list)
    for message, status in changes:
        by_kind[message.related_kind or ""].append((message, status))
    for kind, tracked in by_kind.items():
        bulk_listeners = list(_bulk_listeners.get(kind, []))
        listeners = list(_listeners.get(kind, []))
        if not bulk_listeners and not listeners:
            continue
        kind_changes = await _as_objects(session, tracked)
        for bulk in bulk_listeners:
            await bulk(session, kind_changes)
        for listener in listeners:
            for message, status in kind_changes:
                await listener(session, message, status)


async def _as_objects(
    session: AsyncSession, changes: Sequence[tuple[TrackedMessage, str]]
) -> list[tuple[Message, str]]:
    """Listeners take Message objects: a batch job's rows are loaded as such (after the
    UPDATE that wrote them, so they hold what was recorded), only for kinds that listen."""
    rows = [message.id for message, _ in changes if not isinstance(message, Message)]
    loaded: dict[str, Message] = {}
    if rows:
        statement = where_one_of(session, select(Message), Message.id, rows)
        loaded = {message.id: message for message in await session.scalars(statement)}
    return [
        (message if isinstance(message, Message) else loaded[message.id], status)
        for message, status in changes
    ]
