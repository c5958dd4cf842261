"""emit(): one event row in the caller's transaction, so it exists exactly when the change does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import insert_rows
from caretime.events.actor import current_actor
from caretime.events.catalogue import is_known
from caretime.events.models import Event
from caretime.ids import new_id


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
    if not is_known(type):
        raise ValueError(f"event type {type!r} is not in the catalogue")
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
    session.add(event)
    await session.flush()
    return event


async def emit_many(
    session: AsyncSession,
    *,
    tenant_id: str,
    type: str,
    subjects: tuple[str, list[str]],
    data: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Record one change of the same type to many subjects of one kind (a batch of calls, a
    fan-out's offers) in one statement; `data[i]` belongs to `subjects[1][i]`."""
    if not is_known(type):
        raise ValueError(f"event type {type!r} is not in the catalogue")
    kind, ids = subjects
    await insert_rows(
        session,
        Event,
        {"id": [new_id("evt") for _ in ids], "subject_id": ids, "data": data},
        shared={
            "tenant_id": tenant_id,
            "type": type,
            "occurred_at": now,
            "subject_kind": kind,
            "actor": current_actor(),
        },
    )
