"""Reserving a visit: checks for a clear error first, then the database's no-overlap
guarantee (see occupancy and holding).

`reserve` does it all in the caller's transaction (waitlist claims, SMS moves, the
dashboard); `POST /reservations` splits the same steps its own way (reserving). A time taken
only by holds past their deadline is taken over: those holds are expired in the write's
transaction (one conditional UPDATE, on this losing path only) and the hold written again.
No row lock is held across network time (docs/booking.md, "Reserving").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import holding, lifecycle, placing, texts, visit_types
from caretime.booking.availability import Rule, Window, effective_windows
from caretime.booking.errors import (
    OffGrid,
    OutsideAvailability,
    ProviderNotFound,
    ReservationKeyReused,
    ReservationNotFound,
    SlotTaken,
    TooLittleNotice,
)
from caretime.booking.events import appointment_data
from caretime.booking.grid import VisitShape, is_visit_start, on_grid
from caretime.booking.localtime import utc_to_wall
from caretime.booking.models import Appointment, Provider
from caretime.booking.occupancy import check_day_limit
from caretime.booking.repository import AppointmentRepository, RuleRepository, active_at
from caretime.clock import isoformat_z
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
    """Hold the visit in the caller's transaction, or raise why not. Checks run in a fixed
    order (a replayed Idempotency-Key first, then notice, provider, visit type, grid,
    availability, the day's limit, and last the time being free), so each request gets the
    same error it always did."""
    if request.idempotency_key is not None:
        existing = await _replay(session, tenant_id, request)
        if existing is not None:
            return existing
    check_notice(request.slot_start, policy, now)
    default = visit_types.default_shape(policy)
    place = await placing.read_place(
        session, tenant_id, request.provider_id, request.slot_start, request.visit_type, default
    )
    place, shape = checked_place(place, request, policy)
    await check_day_limit(session, place.provider, request.slot_start, now=now)
    hold = new_hold(tenant_id, request, shape, policy, now)
    return await held(session, hold, place.provider, place.endpoints, request, now)


# The windows of availability around a local date (the day before to the day after).
WindowsAround = Callable[[date], Sequence[Window]]


def checked_place(
    place: placing.Place | None,
    request: ReservationRequest,
    policy: BookingPolicy,
    windows_around: WindowsAround | None = None,
) -> tuple[placing.Place, VisitShape]:
    """The place and the visit's shape, or why the visit cannot go there (`windows_around`:
    the place's windows, if the caller keeps them; else computed from its rules)."""
    if place is None:
        raise ProviderNotFound(f"no provider {request.provider_id!r}")
    if place.shape is None:
        raise visit_types.not_offered(place.provider.id, request.visit_type)
    provider, shape = place.provider, place.shape
    check_slot_in(place.rules, provider, request.slot_start, policy, shape, windows_around)
    return place, shape


async def held(
    session: AsyncSession,
    hold: Appointment,
    provider: Provider,
    endpoints: list[str],
    request: ReservationRequest,
    now: datetime,
    *,
    written_once: bool = False,
) -> Appointment:
    """Write the hold in `session`'s transaction (unless `written_once` found the time
    taken already), with its SMS question; if the time is taken, why."""
    if not await _take(session, hold, endpoints, now, written_once=written_once):
        return await _lost_race(session, hold.tenant_id, request)
    if request.confirm_by_sms:
        await texts.ask_to_confirm(session, hold.tenant_id, hold, provider)
    return hold


async def _take(
    session: AsyncSession,
    hold: Appointment,
    endpoints: list[str],
    now: datetime,
    *,
    written_once: bool = False,
) -> bool:
    """Write the hold; if the time is taken only by holds past their deadline (whose sweep
    has not run yet), expire those in this transaction, as the sweep would, and write again."""
    data = appointment_data(hold)
    if not written_once and await holding.write_hold(session, hold, data, endpoints):
        return True
    span = (hold.occupied_start, hold.occupied_end)
    stale = await lifecycle.expire_stale_holds(
        session, hold.tenant_id, hold.provider_id, span, now=now
    )
    if not stale:
        return False
    return await holding.write_hold(session, hold, data, endpoints)


def check_notice(slot_start: datetime, policy: BookingPolicy, now: datetime) -> None:
    """Exactly the minimum notice ahead is allowed ("at least 24 hours")."""
    if slot_start - now < policy.min_notice:
        raise TooLittleNotice(
            f"slots must be reserved at least {_hours(policy.min_notice)} ahead",
            earliest=isoformat_z(now + policy.min_notice),
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
    day = utc_to_wall(slot_start, ZoneInfo(provider.tz)).date()
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    rules = await RuleRepository(session, tenant_id).rules([provider.id], first, last)
    check_slot_in(rules.get(provider.id, []), provider, slot_start, policy, shape)


def check_slot_in(
    rules: Sequence[Rule],
    provider: Provider,
    slot_start: datetime,
    policy: BookingPolicy,
    shape: VisitShape,
    windows_around: WindowsAround | None = None,
) -> None:
    """check_slot with the provider's rules already read (any that apply within a day of the
    slot's local date; others are ignored), or their windows (`windows_around`)."""
    zone = ZoneInfo(provider.tz)
    if not on_grid(slot_start, zone, policy.slot_minutes):
        raise OffGrid(
            f"slots start on the provider's {policy.slot_minutes}-minute grid "
            f"(local {utc_to_wall(slot_start, zone):%H:%M:%S} is not on it)"
        )
    day = utc_to_wall(slot_start, zone).date()
    windows = windows_around(day) if windows_around else windows_near(rules, zone, day)
    grid = timedelta(minutes=policy.slot_minutes)
    if not is_visit_start(windows, grid, shape, slot_start):
        raise OutsideAvailability(
            f"provider {provider.id!r} has no {_visit_words(shape)} starting then"
        )


def windows_near(rules: Sequence[Rule], zone: ZoneInfo, day: date) -> list[Window]:
    """The windows of `rules` from the day before local date `day` to the day after."""
    return effective_windows(rules, zone, day - timedelta(days=1), day + timedelta(days=1))


def _visit_words(shape: VisitShape) -> str:
    buffers = " with its buffers" if shape.before or shape.after else ""
    return f"room for a {shape.minutes}-minute visit{buffers}"


def new_hold(
    tenant_id: str,
    request: ReservationRequest,
    shape: VisitShape,
    policy: BookingPolicy,
    now: datetime,
) -> Appointment:
    """The hold as it will be written (transient: written by holding, not by the session)."""
    occupied_start, occupied_end = shape.occupied(request.slot_start)
    return Appointment(
        tenant_id=tenant_id,
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
        confirmed_at=None,
        arrived_at=None,
        ended_at=None,
    )


async def _replay(
    session: AsyncSession, tenant_id: str, request: ReservationRequest
) -> Appointment | None:
    """The reservation this request's Idempotency-Key made (if the body is the same)."""
    assert request.idempotency_key is not None
    existing = await AppointmentRepository(session, tenant_id).by_idempotency_key(
        request.idempotency_key
    )
    return None if existing is None else _same_request(existing, request)


async def _lost_race(
    session: AsyncSession, tenant_id: str, request: ReservationRequest
) -> Appointment:
    """Nothing was written: the same Idempotency-Key committed concurrently (return that
    hold), or the time is taken."""
    if request.idempotency_key is not None:
        existing = await _replay(session, tenant_id, request)
        if existing is not None:
            return existing
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
