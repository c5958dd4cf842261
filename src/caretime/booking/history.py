"""An appointment's history: its events (who changed what, when), oldest first."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.reservations import get
from caretime.events.models import Event


async def history(session: AsyncSession, tenant_id: str, appointment_id: str) -> Sequence[Event]:
    await get(session, tenant_id, appointment_id)
    statement = (
        select(Event)
        .where(
            Event.tenant_id == tenant_id,
            Event.subject_kind == "appointment",
            Event.subject_id == appointment_id,
        )
        .order_by(Event.seq)
    )
    return (await session.scalars(statement)).all()
