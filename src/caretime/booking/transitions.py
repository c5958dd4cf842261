"""An appointment's status moves together with what follows from them: a confirmed visit gets
its reminders, an ended one loses them and its open SMS questions, a no-show may be offered
to rebook. Every caller that moves a status (API, dashboard, SMS, availability removal) goes
through here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import (
    followups,
    lifecycle,
    notices,
    outcomes,
    prompts,
    reminders,
    waitlist,
)
from caretime.booking.events import appointments_changed
from caretime.booking.models import Appointment


async def move(
    session: AsyncSession, tenant_id: str, appointment_id: str, target: str, *, now: datetime
) -> Appointment:
    """confirmed, denied, cancelled, or expired by hand (see lifecycle)."""
    appointment, moved = await lifecycle.move_reporting(
        session, tenant_id, appointment_id, target, now=now
    )
    if moved and target in ("cancelled", "denied"):
        await notices.plan(session, appointment, target, now=now)
    if moved and target in ("cancelled", "denied", "expired"):
        await waitlist.freed(session, appointment, now=now)
    await after_move(session, appointment, now=now)
    return appointment


async def set_status(
    session: AsyncSession, tenant_id: str, appointment_id: str, target: str, *, now: datetime
) -> Appointment:
    """PATCH's move: any status a caller may set (held only as "it is still held")."""
    if target in outcomes.OUTCOMES:
        return await record_outcome(session, tenant_id, appointment_id, target, now=now)
    if target == "held":
        return await lifecycle.still_held(session, tenant_id, appointment_id, now=now)
    return await move(session, tenant_id, appointment_id, target, now=now)


async def cancel_many(
    session: AsyncSession, tenant_id: str, ids: Sequence[str], *, now: datetime
) -> list[Appointment]:
    """Visits whose time was taken out of availability."""
    cancelled = await lifecycle.cancel_many(session, tenant_id, ids, now=now)
    for appointment in cancelled:
        await after_move(session, appointment, now=now)
        await notices.plan(session, appointment, "removed", now=now)
    return cancelled


async def after_move(session: AsyncSession, appointment: Appointment, *, now: datetime) -> None:
    if appointment.status == "confirmed":
        await reminders.plan(session, appointment, now=now)
    elif appointment.status not in lifecycle.ACTIVE:
        await reminders.drop(session, appointment)
        await prompts.close_for_appointment(session, appointment.tenant_id, appointment.id, now=now)


async def record_outcome(
    session: AsyncSession, tenant_id: str, appointment_id: str, outcome: str, *, now: datetime
) -> Appointment:
    """arrived, fulfilled or no_show (see outcomes), with its event and what follows."""
    appointment, moved = await outcomes.record(session, tenant_id, appointment_id, outcome, now=now)
    if not moved:
        return appointment
    await appointments_changed(session, tenant_id, [appointment], now=now)
    await after_move(session, appointment, now=now)
    if outcome == "no_show":
        await followups.plan(session, appointment, now=now)
    return appointment
