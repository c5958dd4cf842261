"""Reserving a visit: checks for a clear error first, then the database's no-overlap
guarantee (see occupancy).

The request transaction holds no row lock across network time: it expires stale holds in the
visit's way (one conditional UPDATE), inserts the hold inside a SAVEPOINT, and enqueues its
expiry job; an overlap rolls back only the SAVEPOINT and becomes a 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import lifecycle, texts, visit_types
from caretime.booking.availability import effective_windows
from caretime.booking.errors import (
    OffGrid,
    OutsideAvailability,
    ReservationKeyReused,
    ReservationNotFound,
    SlotTaken,
    TooLittleNotice,
)
from caretime.booking.events import appointments_changed
from caretime.booking.grid import VisitShape, on_grid, visit_starts
from caretime.booking.localtime import utc_to_wall
from caretime.booking.models import Appointment, Provider
from caretime.booking.occupancy import check_day_limit, claim_time
from caretime.booking.repository import AppointmentRepository, RuleRepository, active_at
from caretime.booking.service import require_provider
from caretime.clock import isoformat_z
from caretime.dispatch import enqueue
from caretime.ids import new_id
from caretime.tenancy.policy import BookingPolicy

EXPIRE_HOLD = "booking.expire_hold"


@dataclass(frozen=True)
class ReservationRequest:
    provider_id: str
    slot_start: datetime
    client_id: str
    idempotency_key: str | None = None
    phone: str | None = None  # E.164: for reminders and notices
    visit_type: str | None = None
    confirm_by_sms: bool = False  # text the phone to confirm the hold


async def reserve(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    request: ReservationRequest,
    *,
    now: datetime,
) -> Appointment:
    repo = AppointmentRepository(session, tenant_id)
    if request.idempotency_key is not None:
        existing = await repo.by_idempotency_key(request.idempotency_key)
        if existing is not None:
            return _same_request(existing, request)
    check_notice(request.slot_start, policy, now)
    provider = await require_provider(session, tenant_id, request.provider_id)
    shape = await visit_shape(session, tenant_id, provider.id, request.visit_type, policy)
    await check_slot(session, tenant_id, provider, request.slot_start, policy, shape)
    await check_day_limit(session, provider, request.slot_start, now=now)
    occupied = shape.occupied(request.slot_start)
    await lifecycle.expire_stale_holds(session, tenant_id, provider.id, occupied, now=now)
    hold = _new_hold(request, shape, policy, now)

    async def insert() -> None:
        # Added inside the SAVEPOINT, so a rollback of it also forgets the object.
        repo.add(hold)

    if not await claim_time(session, f"{tenant_id}:{provider.id}", insert):
        return await _lost_race(repo, request)
    await appointments_changed(session, tenant_id, [hold], now=now)
    await enqueue(
        session,
        EXPIRE_HOLD,
        {"appointment_id": hold.id},
        run_at=hold.hold_expires_at,
        tenant_id=tenant_id,
        dedupe_key=f"{EXPIRE_HOLD}:{hold.id}",
    )
    if request.confirm_by_sms:
        await texts.ask_to_confirm(session, tenant_id, hold, provider)
    return hold


def check_notice(slot_start: datetime, policy: BookingPolicy, now: datetime) -> None:
    """Exactly the minimum notice ahead is allowed ("at least 24 hours")."""
    if slot_start - now < policy.min_notice:
        raise TooLittleNotice(
            f"slots must be reserved at least {_hours(policy.min_notice)} ahead",
            earliest=isoformat_z(now + policy.min_notice),
        )


async def visit_shape(
    session: AsyncSession,
    tenant_id: str,
    provider_id: str,
    visit_type: str | None,
    policy: BookingPolicy,
) -> VisitShape:
    if visit_type is None:
        return visit_types.default_shape(policy)
    return visit_types.shape_of(
        await visit_types.require(session, tenant_id, provider_id, visit_type)
    )


async def check_slot(
    session: AsyncSession,
    tenant_id: str,
    provider: Provider,
    slot_start: datetime,
    policy: BookingPolicy,
    shape: VisitShape,
) -> None:
    """On the grid, and the visit with its buffers inside one window of availability."""
    zone = ZoneInfo(provider.tz)
    if not on_grid(slot_start, zone, policy.slot_minutes):
        raise OffGrid(
            f"slots start on the provider's {policy.slot_minutes}-minute grid "
            f"(local {utc_to_wall(slot_start, zone):%H:%M:%S} is not on it)"
        )
    day = utc_to_wall(slot_start, zone).date()
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    rules = await RuleRepository(session, tenant_id).rules([provider.id], first, last)
    windows = effective_windows(rules.get(provider.id, []), zone, first, last)
    grid = timedelta(minutes=policy.slot_minutes)
    if not any(start == slot_start for start, _ in visit_starts(windows, grid, shape)):
        raise OutsideAvailability(
            f"provider {provider.id!r} has no {_visit_words(shape)} starting then"
        )


def _visit_words(shape: VisitShape) -> str:
    buffers = " with its buffers" if shape.before or shape.after else ""
    return f"room for a {shape.minutes}-minute visit{buffers}"


def _new_hold(
    request: ReservationRequest, shape: VisitShape, policy: BookingPolicy, now: datetime
) -> Appointment:
    occupied_start, occupied_end = shape.occupied(request.slot_start)
    return Appointment(
        id=new_id("apt"),
        provider_id=request.provider_id,
        client_id=request.client_id,
        slot_start=request.slot_start,
        slot_end=shape.end(request.slot_start),
        visit_type_id=request.visit_type,
        occupied_start=occupied_start,
        occupied_end=occupied_end,
        status="held",
        hold_expires_at=now + policy.hold,
        idempotency_key=request.idempotency_key,
        patient_phone=request.phone,
        created_at=now,
        updated_at=now,
    )


async def _lost_race(repo: AppointmentRepository, request: ReservationRequest) -> Appointment:
    """The insert hit a unique index: the same Idempotency-Key committed concurrently (return
    that hold), or the slot is taken."""
    if request.idempotency_key is not None:
        existing = await repo.by_idempotency_key(request.idempotency_key)
        if existing is not None:
            return _same_request(existing, request)
    raise SlotTaken(f"the time at {request.slot_start:%Y-%m-%dT%H:%MZ} is taken")


def _same_request(existing: Appointment, request: ReservationRequest) -> Appointment:
    same = (
        existing.provider_id,
        existing.slot_start,
        existing.client_id,
        existing.visit_type_id,
    ) == (request.provider_id, request.slot_start, request.client_id, request.visit_type)
    if not same:
        raise ReservationKeyReused(
            "this Idempotency-Key was already used for another reservation", id=existing.id
        )
    return existing


async def get(session: AsyncSession, tenant_id: str, appointment_id: str) -> Appointment:
    appointment = await AppointmentRepository(session, tenant_id).get(appointment_id)
    if appointment is None:
        raise ReservationNotFound(f"no reservation {appointment_id!r}")
    return appointment


@dataclass(frozen=True)
class AppointmentFilter:
    provider_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None


async def list_appointments(
    session: AsyncSession,
    tenant_id: str,
    where: AppointmentFilter,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[Sequence[Appointment], tuple[datetime, str] | None]:
    """Ordered by slot start, then id; keyset-paginated on that pair."""
    repo = AppointmentRepository(session, tenant_id)
    statement = repo.select()
    if where.provider_id is not None:
        statement = statement.where(Appointment.provider_id == where.provider_id)
    if where.start is not None:
        statement = statement.where(Appointment.slot_start >= where.start)
    if where.end is not None:
        statement = statement.where(Appointment.slot_start < where.end)
    if where.status is not None:
        statement = statement.where(_status_is(where.status, now))
    if after is not None:
        statement = statement.where(
            or_(
                Appointment.slot_start > after[0],
                and_(Appointment.slot_start == after[0], Appointment.id > after[1]),
            )
        )
    statement = statement.order_by(Appointment.slot_start, Appointment.id).limit(limit + 1)
    rows = await repo.all(statement)
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], (last.slot_start, last.id)


def _status_is(status: str, now: datetime) -> ColumnElement[bool]:
    """Filter on the status a reader sees: a hold past its deadline counts as expired."""
    stale = and_(Appointment.status == "held", Appointment.hold_expires_at <= now)
    if status == "held":
        return and_(Appointment.status == "held", Appointment.hold_expires_at > now)
    if status == "expired":
        return or_(Appointment.status == "expired", stale)
    if status == "active":
        return active_at(now)
    return Appointment.status == status


def _hours(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours:g} hours"
