"""An appointment's status moves, each one conditional UPDATE so that racing moves (a
last-second confirm against the expiry job, two cancels) have exactly one winner.

held → confirmed | expired | cancelled | denied; confirmed → cancelled. (A visit's outcome,
arrived / fulfilled / no_show, is in outcomes.)
A hold past its deadline is expired for every reader, whether or not the job has run yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.errors import InvalidTransition, ReservationNotFound
from caretime.booking.events import appointments_changed
from caretime.booking.models import Appointment
from caretime.booking.repository import AppointmentRepository, booked_at, overlapping

FHIR = {
    "held": ("pending", "busy-tentative"),
    "confirmed": ("booked", "busy"),
    "expired": ("cancelled", "free"),
    "denied": ("cancelled", "free"),
    "cancelled": ("cancelled", "free"),
    "arrived": ("arrived", "busy"),
    "fulfilled": ("fulfilled", "busy"),
    "no_show": ("noshow", "busy"),
}
ACTIVE = ("held", "confirmed")
_VERBS = {"confirmed": "confirm", "denied": "deny", "cancelled": "cancel", "expired": "expire"}


def effective_status(appointment: Appointment, now: datetime) -> str:
    if appointment.status == "held" and appointment.hold_expires_at <= now:
        return "expired"
    return appointment.status


def _movable_to(target: str, now: datetime) -> ColumnElement[bool]:
    if target == "cancelled":
        return booked_at(now)
    if target == "expired":  # by hand: a coordinator may expire a hold before its deadline
        return Appointment.status == "held"
    return and_(Appointment.status == "held", Appointment.hold_expires_at > now)


async def move(
    session: AsyncSession, tenant_id: str, appointment_id: str, target: str, *, now: datetime
) -> Appointment:
    """Move to confirmed, denied, cancelled or expired. Already there: returned unchanged."""
    return (await move_reporting(session, tenant_id, appointment_id, target, now=now))[0]


async def move_reporting(
    session: AsyncSession, tenant_id: str, appointment_id: str, target: str, *, now: datetime
) -> tuple[Appointment, bool]:
    """As move, and whether this call moved it (False: it was already there, a retry)."""
    moved = await _update(session, tenant_id, [appointment_id], target, now)
    if moved:
        return moved[0], True
    appointment = await AppointmentRepository(session, tenant_id).get(appointment_id)
    if appointment is None:
        raise ReservationNotFound(f"no reservation {appointment_id!r}")
    if appointment.status == target:
        return appointment, False
    status = effective_status(appointment, now)
    raise InvalidTransition(
        f"cannot {_VERBS[target]} a reservation that is {status}", reservation_status=status
    )


async def still_held(
    session: AsyncSession, tenant_id: str, appointment_id: str, *, now: datetime
) -> Appointment:
    """PENDING means "held": true of a live hold (unchanged), and nothing can go back to it."""
    appointment = await AppointmentRepository(session, tenant_id).get(appointment_id)
    if appointment is None:
        raise ReservationNotFound(f"no reservation {appointment_id!r}")
    status = effective_status(appointment, now)
    if status != "held":
        raise InvalidTransition(
            f"a reservation that is {status} cannot become held again", reservation_status=status
        )
    return appointment


async def cancel_many(
    session: AsyncSession, tenant_id: str, ids: Sequence[str], *, now: datetime
) -> list[Appointment]:
    return await _update(session, tenant_id, ids, "cancelled", now) if ids else []


async def expire(
    session: AsyncSession, tenant_id: str, appointment_id: str, *, now: datetime
) -> bool:
    """Expire a hold whose deadline has passed. False if it was confirmed, cancelled or
    denied first (or is not due): the other move won."""
    expired = await _expired(
        session,
        update(Appointment).where(
            Appointment.tenant_id == tenant_id,
            Appointment.id == appointment_id,
            Appointment.status == "held",
            Appointment.hold_expires_at <= now,
        ),
        tenant_id,
        now,
    )
    return len(expired) == 1


async def expire_stale_holds(
    session: AsyncSession,
    tenant_id: str,
    provider_id: str,
    span: tuple[datetime, datetime],
    *,
    now: datetime,
) -> int:
    """Mark past-deadline holds overlapping `span` expired, so the no-overlap guarantee stops
    counting them before a visit takes that time (their sweep may not have run yet). Returns
    how many it expired."""
    expired = await _expired(
        session,
        update(Appointment).where(
            Appointment.tenant_id == tenant_id,
            Appointment.provider_id == provider_id,
            overlapping(*span),
            Appointment.status == "held",
            Appointment.hold_expires_at <= now,
        ),
        tenant_id,
        now,
    )
    return len(expired)


async def expire_due(session: AsyncSession, tenant_id: str, *, now: datetime) -> list[Appointment]:
    """Expire every hold of the tenant whose deadline has passed (the minute's sweep); a
    confirm, cancel or takeover that won leaves nothing for it. Returns the holds expired."""
    return await _expired(
        session,
        update(Appointment).where(
            Appointment.tenant_id == tenant_id,
            Appointment.status == "held",
            Appointment.hold_expires_at <= now,
        ),
        tenant_id,
        now,
    )


async def _expired(
    session: AsyncSession, statement: Any, tenant_id: str, now: datetime
) -> list[Appointment]:
    """Run a conditional expiry; the holds it expired are told to the events log."""
    expired = list((await session.scalars(
        statement.values(status="expired", updated_at=now, ended_at=now)
        .returning(Appointment)
        .execution_options(populate_existing=True)
    )).all())  # fmt: skip
    await appointments_changed(session, tenant_id, expired, now=now)
    return expired


async def _update(
    session: AsyncSession, tenant_id: str, ids: Sequence[str], target: str, now: datetime
) -> list[Appointment]:
    values: dict[str, Any] = {"status": target, "updated_at": now}
    values["confirmed_at" if target == "confirmed" else "ended_at"] = now
    statement = (
        update(Appointment)
        .where(
            Appointment.tenant_id == tenant_id,
            Appointment.id.in_(ids),
            _movable_to(target, now),
        )
        .values(**values)
        .returning(Appointment)
        .execution_options(populate_existing=True)
    )
    moved = list((await session.scalars(statement)).all())
    await appointments_changed(session, tenant_id, moved, now=now)
    return moved
