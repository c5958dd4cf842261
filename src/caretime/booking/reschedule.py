"""Moving a visit to another time (or provider) in one transaction: the new time is taken
under the same no-overlap guarantee as a new reservation, and the old time is given up only
by that same write, so a lost race leaves the visit exactly where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import holding, lifecycle, notices, reminders, visit_types, waitlist
from caretime.booking.errors import InvalidTransition, SlotTaken
from caretime.booking.grid import VisitShape
from caretime.booking.models import Appointment, Provider
from caretime.booking.occupancy import check_day_limit, claim_time
from caretime.booking.repository import booked_at
from caretime.booking.reservations import check_notice, check_slot, get
from caretime.booking.service import require_provider
from caretime.clock import isoformat_z
from caretime.events import emit
from caretime.tenancy.policy import BookingPolicy


@dataclass(frozen=True)
class Move:
    slot_start: datetime
    provider_id: str | None = None  # None: the same provider


async def reschedule(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    appointment_id: str,
    move: Move,
    *,
    now: datetime,
) -> Appointment:
    """Move a held or confirmed visit; its status is kept. Moving to where it is: unchanged."""
    appointment = await get(session, tenant_id, appointment_id)
    _check_movable(appointment, now)
    provider = await require_provider(
        session, tenant_id, move.provider_id or appointment.provider_id
    )
    if (provider.id, move.slot_start) == (appointment.provider_id, appointment.slot_start):
        return appointment
    check_notice(move.slot_start, policy, now)
    shape = await _shape_at(session, appointment, provider, policy)
    await check_slot(session, tenant_id, provider, move.slot_start, policy, shape)
    await check_day_limit(session, provider, move.slot_start, now=now, moving=appointment.id)
    occupied = shape.occupied(move.slot_start)
    await lifecycle.expire_stale_holds(session, tenant_id, provider.id, occupied, now=now)
    before = _where(appointment)
    values = _moved_values(appointment, provider, move.slot_start, shape, policy, now)
    await _take_new_time(session, appointment, values, now)
    await session.refresh(appointment)
    if "hold_expires_at" in values:
        await _renew_expiry(session, appointment)
    await reminders.plan(session, appointment, now=now)
    previous = datetime.fromisoformat(before["slot_start"].replace("Z", "+00:00"))
    await notices.plan(session, appointment, "rescheduled", now=now, before=previous)
    await waitlist.open_time(session, tenant_id, before["provider_id"], previous, now=now)
    await emit(
        session,
        tenant_id=tenant_id,
        type="appointment.rescheduled",
        subject=("appointment", appointment.id),
        data={"status": appointment.status, "from": before, "to": _where(appointment)},
        now=now,
    )
    return appointment


def _check_movable(appointment: Appointment, now: datetime) -> None:
    status = lifecycle.effective_status(appointment, now)
    if status not in ("held", "confirmed"):
        raise InvalidTransition(
            f"cannot reschedule a reservation that is {status}", reservation_status=status
        )


async def _shape_at(
    session: AsyncSession, appointment: Appointment, provider: Provider, policy: BookingPolicy
) -> VisitShape:
    """The visit keeps its own length and buffers; at another provider, its visit type there."""
    if provider.id != appointment.provider_id:
        if appointment.visit_type_id is None:
            return visit_types.default_shape(policy)
        found = await visit_types.require(
            session, appointment.tenant_id, provider.id, appointment.visit_type_id
        )
        return visit_types.shape_of(found)
    return VisitShape(
        _minutes(appointment.slot_end - appointment.slot_start),
        _minutes(appointment.slot_start - appointment.occupied_start),
        _minutes(appointment.occupied_end - appointment.slot_end),
    )


def _moved_values(
    appointment: Appointment,
    provider: Provider,
    slot_start: datetime,
    shape: VisitShape,
    policy: BookingPolicy,
    now: datetime,
) -> dict[str, Any]:
    occupied_start, occupied_end = shape.occupied(slot_start)
    values: dict[str, Any] = {
        "provider_id": provider.id,
        "slot_start": slot_start,
        "slot_end": shape.end(slot_start),
        "occupied_start": occupied_start,
        "occupied_end": occupied_end,
        "updated_at": now,
    }
    if appointment.status == "held" and policy.reschedule_renews_hold:
        values["hold_expires_at"] = now + policy.hold
    return values


async def _take_new_time(
    session: AsyncSession, appointment: Appointment, values: dict[str, Any], now: datetime
) -> None:
    """One conditional UPDATE inside a SAVEPOINT: it fails on overlap (409, nothing moved),
    and matches no row if the visit stopped being active meanwhile (409 invalid-transition)."""
    moved = False

    async def write() -> None:
        nonlocal moved
        result = await session.execute(
            update(Appointment)
            .where(
                Appointment.tenant_id == appointment.tenant_id,
                Appointment.id == appointment.id,
                booked_at(now),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved = getattr(result, "rowcount", 0) == 1

    provider_key = f"{appointment.tenant_id}:{values['provider_id']}"
    if not await claim_time(session, provider_key, write):
        raise SlotTaken(f"the time at {isoformat_z(values['slot_start'])} is taken")
    if not moved:
        await session.refresh(appointment)
        _check_movable(appointment, now)


async def _renew_expiry(session: AsyncSession, hold: Appointment) -> None:
    """The sweep of the new deadline's minute expires it (a job of the old one finds it not
    due and leaves it)."""
    await holding.ensure_sweep(session, hold.tenant_id, hold.hold_expires_at)


def _where(appointment: Appointment) -> dict[str, str]:
    return {
        "provider_id": appointment.provider_id,
        "slot_start": isoformat_z(appointment.slot_start),
        "slot_end": isoformat_z(appointment.slot_end),
    }


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
