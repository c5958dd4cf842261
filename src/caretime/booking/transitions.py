"""An appointment's status moves together with what follows from them: a confirmed visit gets
its reminders, an ended one loses them and its open SMS questions. Every caller that moves a
status (API, dashboard, SMS, availability removal) goes through here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import lifecycle, prompts, reminders
from caretime.booking.models import Appointment


async def move(
    session: AsyncSession, tenant_id: str, appointment_id: str, target: str, *, now: datetime
) -> Appointment:
    appointment = await lifecycle.move(session, tenant_id, appointment_id, target, now=now)
    await after_move(session, appointment, now=now)
    return appointment


async def cancel_many(
    session: AsyncSession, tenant_id: str, ids: Sequence[str], *, now: datetime
) -> list[Appointment]:
    cancelled = await lifecycle.cancel_many(session, tenant_id, ids, now=now)
    for appointment in cancelled:
        await after_move(session, appointment, now=now)
    return cancelled


async def after_move(session: AsyncSession, appointment: Appointment, *, now: datetime) -> None:
    if appointment.status == "confirmed":
        await reminders.plan(session, appointment, now=now)
    elif appointment.status not in lifecycle.ACTIVE:
        await reminders.drop(session, appointment)
        await prompts.close_for_appointment(session, appointment.tenant_id, appointment.id, now=now)
