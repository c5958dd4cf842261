"""`POST /reservations`: `reservations.reserve`'s steps, split so that a request costs as few
statements as the database allows (docs/booking.md, "Reserving").

A place this process read lately is checked on what was read, and the hold written in one
statement (on SQLite, one hop) that holds only if nothing it was checked on has changed
since (`_write_known`). Otherwise, or if that statement wrote nothing (the place changed, the time
or the Idempotency-Key is taken, the key revoked: the rare path), the request reads first,
outside any write transaction (`attempt`), and writes a hold that is all it writes as a
transaction of its own; what must be atomic with the write runs in the request's
transaction (`finish`). Both paths answer each request as `reserve` would: a refusal is
only ever said by the second, on what it has just read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caretime.booking import holding, placing, visit_types
from caretime.booking.availability import Window
from caretime.booking.events import HELD, appointment_data
from caretime.booking.grid import VisitShape
from caretime.booking.models import Appointment
from caretime.booking.occupancy import check_day_limit
from caretime.booking.reservations import (
    ReservationRequest,
    check_notice,
    checked_place,
    held,
    new_hold,
    reserve,
    windows_near,
)
from caretime.db import transaction
from caretime.dispatch.wakeup import mark_enqueued
from caretime.errors import CaretimeError
from caretime.events.webhooks.outbox import subscribed_endpoints
from caretime.runtime import Runtime
from caretime.tenancy.auth import CurrentTenant, PolicyReadWith, policies_of
from caretime.tenancy.policy import BookingPolicy, TenantPolicy

log = logging.getLogger("caretime.booking")


async def reserve_requested(
    runtime: Runtime,
    tenant: CurrentTenant,
    policies: PolicyReadWith,
    request: ReservationRequest,
    *,
    now: datetime,
) -> Appointment:
    """Hold the visit for an API request, or raise why not, as `reserve` would. The request's
    transaction (committed before this returns) is opened only by a request that needs one:
    a hold written in one statement writes nothing else."""
    places = known_places(runtime)
    known = places.get(_place_key(tenant.id, request))
    if known is not None and not request.confirm_by_sms:
        hold = await _write_known(runtime, tenant, request, known, now)
        if hold is not None:
            return hold
    async with transaction(runtime.sessions) as session:
        return await _read_first(runtime, session, tenant, policies, request, places, now)


async def _read_first(
    runtime: Runtime,
    session: AsyncSession,
    tenant: CurrentTenant,
    policies: PolicyReadWith,
    request: ReservationRequest,
    places: KnownPlaces,
    now: datetime,
) -> Appointment:
    """Read what the checks need (remembering the place), then `attempt` and `finish`: the
    read on a reader connection of its own, outside the write (deps.reading_first)."""
    async with runtime.read_engine.connect() as reader:
        reading = await placing.read_for_request(
            reader, tenant.id, tenant.key_id, request.provider_id, request.slot_start,
            request.visit_type, request.idempotency_key,
        )  # fmt: skip
        policy = (await policies.policy(reading.key, reading.policy_version, on=reader)).booking
        default = visit_types.default_shape(policy)
        places.remember(_place_key(tenant.id, request), reading, request, default)
        tried = await attempt(reader, session, tenant.id, policy, request, reading, now=now)
    return await finish(session, tenant.id, policy, request, tried, now=now)


@dataclass(frozen=True)
class KnownPlace:
    """A place as a request read it, and what it was read with."""

    place: placing.Place
    policy_version: int
    place_version: int  # the provider's place_versions number, read with the place
    endpoints_version: int  # the tenant's endpoint number, read with the place
    # Its windows around each local date checked here, by date: computed once from its
    # rules (which its version fixes: a write checked on them holds only at that version)
    windows: dict[date, list[Window]] = field(default_factory=dict, compare=False)

    def windows_around(self, day: date) -> list[Window]:
        windows = self.windows.get(day)
        if windows is None:
            zone = ZoneInfo(self.place.provider.tz)
            windows = self.windows[day] = windows_near(self.place.rules, zone, day)
        return windows


@dataclass(frozen=True)
class Attempt:
    """How far a request got on what it read (`attempt`); `finish` does the rest."""

    hold: Appointment | None  # None: an Idempotency-Key replay, for `reserve` to answer
    place: placing.Place | None = None
    written: bool | None = None  # written alone (True), the time taken (False), or not tried


async def attempt(
    reader: AsyncConnection,
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    request: ReservationRequest,
    reading: placing.Reading,
    *,
    now: datetime,
) -> Attempt:
    """`reserve`'s checks, in its order, on what the request read already (on `reader`,
    outside any write transaction: placing.read_for_request). A hold that needs nothing else
    written with it is written here, as a transaction of its own (holding.write_alone: on
    SQLite a writer connection, taken while `reader` is held; readers have a pool of their
    own there). The caller lets go of `reader` before `finish`, whose transaction may wait
    for a connection of the pool `reader` came from on PostgreSQL."""
    if reading.replayed:
        return Attempt(None)
    check_notice(request.slot_start, policy, now)
    default = visit_types.default_shape(policy)
    place = reading.place(tenant_id, request.provider_id, request.visit_type, default)
    place, shape = checked_place(place, request, policy)
    hold = new_hold(tenant_id, request, shape, policy, now)
    if not _alone(place, request):
        return Attempt(hold, place)
    written = await holding.write_alone(reader, session, hold, appointment_data(hold))
    return Attempt(hold, place, written)


async def finish(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    request: ReservationRequest,
    tried: Attempt,
    *,
    now: datetime,
) -> Appointment:
    """The rest of `attempt`, in the request's transaction: what must be atomic with the
    write (the day's limit, webhook deliveries, the SMS question, taking over lapsed holds)."""
    hold, place = tried.hold, tried.place
    if hold is None:  # a replay: answered as `reserve` answers it
        return await reserve(session, tenant_id, policy, request, now=now)
    if tried.written:
        return hold
    assert place is not None
    if tried.written is False:  # the time is taken: by lapsed holds only?
        return await held(session, hold, place.provider, [], request, now, written_once=True)
    await check_day_limit(session, place.provider, request.slot_start, now=now)
    endpoints = place.endpoints
    if endpoints:  # read unlocked: read again, locked until this transaction ends (outbox)
        endpoints = await subscribed_endpoints(session, tenant_id, HELD)
    return await held(session, hold, place.provider, endpoints, request, now)


def _alone(place: placing.Place, request: ReservationRequest) -> bool:
    """Whether the hold, its event and its sweep job are all the request writes."""
    return _place_alone(place) and not request.confirm_by_sms


def _place_alone(place: placing.Place) -> bool:
    """Whether a hold there needs nothing written with it (no day limit, no deliveries)."""
    return not (place.endpoints or place.provider.max_per_day is not None)


_PlaceKey = tuple[str, str, str | None, date]


class KnownPlaces:
    """The places this process's requests read lately (the most recent `size`): a hint, never
    trusted; the write that uses one checks that it is still so."""

    def __init__(self, size: int = 4096) -> None:
        self._places: OrderedDict[_PlaceKey, KnownPlace] = OrderedDict()
        self._size = size

    def get(self, key: _PlaceKey) -> KnownPlace | None:
        known = self._places.get(key)
        if known is not None:
            self._places.move_to_end(key)
        return known

    def remember(
        self,
        key: _PlaceKey,
        reading: placing.Reading,
        request: ReservationRequest,
        default: VisitShape,
    ) -> None:
        """Keep the place `reading` read (`default`: the visit's shape by the policy read)
        if a hold there could be written alone."""
        self._places.pop(key, None)
        if reading.place_version is None or reading.key != "valid":
            return
        place = reading.place(key[0], request.provider_id, request.visit_type, default)
        if place is None or place.shape is None or not _place_alone(place):
            return
        self._places[key] = KnownPlace(
            place, reading.policy_version, reading.place_version, reading.endpoints_version
        )
        if len(self._places) > self._size:
            self._places.popitem(last=False)


def _shaped(
    place: placing.Place, request: ReservationRequest, policy: BookingPolicy
) -> placing.Place:
    """`place` with the visit's shape by `policy` when the request names no visit type."""
    if request.visit_type is not None:
        return place
    return replace(place, shape=visit_types.default_shape(policy))


def known_places(runtime: Runtime) -> KnownPlaces:
    return runtime.service("booking.places", KnownPlaces)


def _place_key(tenant_id: str, request: ReservationRequest) -> _PlaceKey:
    """A place is read for the slot's UTC day (placing.place_params)."""
    day = request.slot_start.astimezone(UTC).date()
    return tenant_id, request.provider_id, request.visit_type, day


async def _write_known(
    runtime: Runtime,
    tenant: CurrentTenant,
    request: ReservationRequest,
    known: KnownPlace,
    now: datetime,
) -> Appointment | None:
    """The hold checked on `known` and written in one statement if nothing it was checked on
    changed; None if a check refuses it (the refusal is for a fresh read to say) or nothing
    was written."""
    # The cached policy may be newer than the one read with the place: the checks may then
    # use it, but the write holds only at exactly `known.policy_version`, so a changed
    # policy always ends on the path that reads afresh.
    parsed = policies_of(runtime).parsed(tenant.id, known.policy_version)
    if not isinstance(parsed, TenantPolicy):
        return None
    policy = parsed.booking
    try:
        check_notice(request.slot_start, policy, now)
        place = _shaped(known.place, request, policy)
        _, shape = checked_place(place, request, policy, known.windows_around)
    except CaretimeError:
        return None
    hold = new_hold(tenant.id, request, shape, policy, now)
    as_read = {"key_id": tenant.key_id, "tenant_id": tenant.id,
               "policy_version": known.policy_version, "provider_id": request.provider_id,
               "place_version": known.place_version,
               "endpoints_version": known.endpoints_version}  # fmt: skip
    written, sweep_at = await holding.write_known(
        runtime.engine, hold, appointment_data(hold), as_read
    )
    if sweep_at is not None:  # this wrote the minute's sweep job: wake the workers
        await _wake_workers(runtime, sweep_at)
    return hold if written else None


async def _wake_workers(runtime: Runtime, at: datetime) -> None:
    """Wake the workers for work due `at`, the hold already committed: a failure here is
    logged, not raised (the client must not be told its held visit failed; the workers
    find the job when they next poll)."""
    try:
        async with transaction(runtime.sessions) as session:
            mark_enqueued(session, at)
    except Exception as exc:
        log.warning("wake_after_hold_failed", extra={"fields": {"error": type(exc).__name__}})
