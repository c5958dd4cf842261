"""Booking endpoints: providers, availability, slots, reservations, appointments. Thin: each
parses, calls one service function, and renders."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Body, Header, Query, Request, Response, status

from caretime.booking import (
    cursors,
    reservations,
    reserving,
    service,
    slots,
    transitions,
)
from caretime.booking.bounds import Bound, bound_instant
from caretime.booking.errors import (
    AppointmentsInTheWay,
    DayFull,
    InvalidTransition,
    InvalidWindows,
    OffGrid,
    OutsideAvailability,
    ProviderExists,
    ProviderNotFound,
    RangeTooLong,
    ReservationKeyReused,
    ReservationNotFound,
    SlotTaken,
    TemplateNotFound,
    TooLittleNotice,
    VisitTypeNotFound,
)
from caretime.booking.grid import Slot
from caretime.booking.rendering import render, render_json
from caretime.booking.reservation_router import router as reservation_router
from caretime.booking.schemas import (
    AppointmentPage,
    AvailabilityBody,
    AvailabilityChangeOut,
    AvailabilityOut,
    DayOrInstant,
    Limit,
    ProviderIn,
    ProviderOut,
    ProviderPage,
    ReservationIn,
    ReservationOut,
    ReservationPatch,
    SlotPage,
    SlotSearch,
    TemplateOut,
    WindowOut,
)
from caretime.booking.service import minute_text, template_fields
from caretime.booking.validation import read_windows
from caretime.booking.visit_type_router import router as visit_type_router
from caretime.booking.waitlist_router import router as waitlist_router
from caretime.deps import ClockDep, SessionDep
from caretime.direct_routes import answers_directly
from caretime.errors import InvalidInput
from caretime.events.router import Cursor, EventPage, subject_events
from caretime.events.router import Limit as EventLimit
from caretime.openapi import documents_query, json_body, problems
from caretime.query_models import QueryModel
from caretime.runtime import Runtime
from caretime.storable import PathText, QueryText
from caretime.tenancy.auth import (
    PolicyDep,
    PolicyReadWithDep,
    TenantDep,
    current_tenant,
    policy_read_with,
)
from caretime.tenancy.policy import BookingPolicy

router = APIRouter(tags=["booking"])
router.include_router(reservation_router)
router.include_router(visit_type_router)
router.include_router(waitlist_router)
Force = Annotated[bool, Query(description="cancel confirmed appointments in removed time")]
MAX_AVAILABILITY_DAYS = 366


@router.post("/providers", responses=problems(ProviderExists), status_code=status.HTTP_201_CREATED)
async def create_provider(
    body: ProviderIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ProviderOut:
    """Create a provider (a clinician or a room) with the IANA zone its availability is
    written in. `id` is optional and opaque; an id already used is a 409."""
    provider = await service.create_provider(session, tenant.id, body, now=clock.now())
    return ProviderOut.model_validate(provider)


@router.get("/providers")
async def list_providers(
    tenant: TenantDep, session: SessionDep, limit: Limit = 100, cursor: QueryText = None
) -> ProviderPage:
    """The tenant's providers, oldest first, a page at a time (`cursor` from `next_cursor`)."""
    rows, next_cursor = await service.list_providers(session, tenant.id, limit=limit, after=cursor)
    return ProviderPage(
        items=[ProviderOut.model_validate(p) for p in rows], next_cursor=next_cursor
    )


@router.get("/providers/{provider_id}", responses=problems(ProviderNotFound))
async def get_provider(
    provider_id: PathText, tenant: TenantDep, session: SessionDep
) -> ProviderOut:
    """One provider by id."""
    return ProviderOut.model_validate(
        await service.require_provider(session, tenant.id, provider_id)
    )


# Read item by item in the handler (see read_windows), documented here as what it accepts.
AVAILABILITY_BODY = json_body(AvailabilityBody, "AvailabilityIn")


@router.post(
    "/providers/{provider_id}/availability",
    responses=problems(ProviderNotFound, InvalidWindows, AppointmentsInTheWay),
    openapi_extra={"requestBody": AVAILABILITY_BODY},
)
async def add_availability(
    provider_id: PathText,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    body: Annotated[Any, Body(include_in_schema=False)],
    force: Force = False,
) -> AvailabilityChangeOut:
    """Publish availability in the provider's local time: one window or a list, each a dated
    window (`date`, `start`, `end`, or `action: remove` for time off) or a weekly template
    (`weekdays`, `start`, `end`, `from`, `until`). Windows must lie on the slot grid. Every
    problem of every item is reported at once; nothing is applied unless all are valid. Time
    removed from under confirmed appointments needs `force=true` (else 409)."""
    items = read_windows(body, policy.booking.slot_minutes)
    change = await service.change_availability(
        session, tenant.id, policy.booking, provider_id, items, force=force, now=clock.now()
    )
    return AvailabilityChangeOut(
        provider_id=provider_id,
        templates=[TemplateOut.model_validate(template_fields(t)) for t in change.templates],
        cancelled_appointments=[render(a, clock.now()) for a in change.cancelled],
    )


@router.get(
    "/providers/{provider_id}/availability", responses=problems(ProviderNotFound, RangeTooLong)
)
async def get_availability(
    provider_id: PathText,
    tenant: TenantDep,
    session: SessionDep,
    start: Annotated[date, Query(description="first local date")],
    end: Annotated[date, Query(description="last local date (inclusive)")],
) -> AvailabilityOut:
    """The provider's effective windows for local dates `start`..`end` (inclusive, at most
    366 days), in local time and in UTC, and its weekly templates."""
    if (end - start).days >= MAX_AVAILABILITY_DAYS or end < start:
        raise RangeTooLong(f"give 1 to {MAX_AVAILABILITY_DAYS} days, end not before start")
    provider = await service.require_provider(session, tenant.id, provider_id)
    windows = await service.effective(session, tenant.id, provider, start, end)
    templates = await service.templates(session, tenant.id, provider.id)
    return AvailabilityOut(
        provider_id=provider.id,
        tz=provider.tz,
        windows=[
            WindowOut(
                date=w.day,
                start=minute_text(w.start_minute),
                end=minute_text(w.end_minute),
                start_utc=w.start,
                end_utc=w.end,
            )
            for w in windows
        ],
        templates=[TemplateOut.model_validate(template_fields(t)) for t in templates],
    )


@router.delete(
    "/providers/{provider_id}/availability/templates/{template_id}",
    responses=problems(ProviderNotFound, TemplateNotFound, AppointmentsInTheWay),
)
async def delete_template(
    provider_id: PathText,
    template_id: PathText,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
    force: Force = False,
) -> AvailabilityChangeOut:
    """Delete a weekly template. Held appointments in the time it gave are cancelled;
    confirmed ones need `force=true` (else 409)."""
    cancelled = await service.delete_template(
        session, tenant.id, provider_id, template_id, force=force, now=clock.now()
    )
    return AvailabilityChangeOut(
        provider_id=provider_id,
        templates=[],
        cancelled_appointments=[render(a, clock.now()) for a in cancelled],
    )


def a_week_from(start: Bound) -> Bound:
    # A date-only end includes its day: seven local days are start to start + 6.
    return start + timedelta(days=7 if isinstance(start, datetime) else 6)


# Read by the handler, not by FastAPI: FastAPI works out each of a query model's fields
# again on every request (~50 µs of a day's search); documented as if FastAPI read it.
SLOT_SEARCH = QueryModel(SlotSearch)


@router.get(
    "/slots",
    response_model=SlotPage,
    responses=problems(ProviderNotFound, VisitTypeNotFound, RangeTooLong, InvalidInput),
)
@documents_query(SlotSearch)
async def get_slots(request: Request, tenant: TenantDep, policies: PolicyReadWithDep) -> Response:
    """Free slots (availability minus active appointments, minus the minimum notice), in
    UTC, ordered by start then provider. `start`/`end` are instants, or dates meaning each
    provider's local days. At most 31 days per search."""
    search = SLOT_SEARCH.read(request.query_params)
    # A connection of the reader pool, borrowed for the one statement, and the runtime's
    # clock, rather than the session and clock dependencies (solving each costs FastAPI more
    # than its own work), and the policy's version read by the search's statement rather
    # than one of its own (docs/benchmarks.md, "slots").
    runtime: Runtime = request.app.state.runtime
    now = runtime.clock.now()
    start = search.start or now
    end = search.end or a_week_from(start)
    query = slots.SlotQuery(search.provider_id, start, end, search.visit_type)
    after = cursors.decode(search.cursor)
    found = await slots.read_slot_search(
        runtime.read_engine, tenant.id, query, now=now, key_id=tenant.key_id
    )
    policy = await policies.policy(found.key, found.policy_version)
    page, position = slots.slots_in(
        found, policy.booking, query, now=now, limit=search.limit, after=after
    )
    return Response(_slot_page(page, cursors.encode(position)), media_type="application/json")


@answers_directly(get_slots, calls=(current_tenant, policy_read_with))
async def get_slots_directly(request: Request) -> Response:
    """`GET /slots` without FastAPI's dependency solving: its two dependencies, then it."""
    tenant = await current_tenant(request)
    return await get_slots(request, tenant, await policy_read_with(request, tenant))


def _slot_page(found: list[Slot], next_cursor: str | None) -> bytes:
    """The JSON SlotPage renders, byte for byte, by orjson: pydantic built, validated and
    rendered each slot twice (`items` and `slots`), most of a day's search in Python."""
    items = orjson.dumps(
        [{"provider_id": s.provider_id, "start": s.start, "end": s.end} for s in found],
        option=orjson.OPT_UTC_Z,
    )
    cursor = orjson.dumps(next_cursor)
    return b'{"items":%b,"slots":%b,"next_cursor":%b}' % (items, items, cursor)


@router.post(
    "/reservations",
    responses=problems(
        ProviderNotFound,
        VisitTypeNotFound,
        SlotTaken,
        DayFull,
        TooLittleNotice,
        OffGrid,
        OutsideAvailability,
        ReservationKeyReused,
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationOut,
)
async def reserve(
    body: ReservationIn,
    tenant: TenantDep,
    policies: PolicyReadWithDep,
    http: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Hold a free slot for a client: 201 with `status: held` and `expires_at` (the policy's
    hold length). The slot is taken for everyone else until the hold is confirmed, cancelled
    or expires. Send an `Idempotency-Key` to retry safely: the same key with the same body
    returns the first hold; with another body it is a 422."""
    request = reservations.ReservationRequest(
        body.provider_id,
        body.slot_start,
        body.client_id,
        idempotency_key,
        body.phone,
        body.visit_type,
        body.confirm_by_sms,
    )
    runtime: Runtime = http.app.state.runtime
    now = runtime.clock.now()
    appointment = await reserving.reserve_requested(runtime, tenant, policies, request, now=now)
    return Response(render_json(appointment, now), status.HTTP_201_CREATED,
                    media_type="application/json")  # fmt: skip


@router.get("/reservations/{reservation_id}", responses=problems(ReservationNotFound))
async def get_reservation(
    reservation_id: PathText, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ReservationOut:
    """One reservation (appointment) by id, with its FHIR statuses."""
    return render(await reservations.get(session, tenant.id, reservation_id), clock.now())


@router.post(
    "/reservations/{reservation_id}/confirm",
    responses=problems(ReservationNotFound, InvalidTransition),
)
async def confirm(
    reservation_id: PathText, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ReservationOut:
    """Confirm a held reservation before its hold expires. An expired, cancelled or denied
    one cannot be confirmed (409)."""
    return await _move(session, tenant.id, reservation_id, "confirmed", clock.now())


@router.post(
    "/reservations/{reservation_id}/cancel",
    responses=problems(ReservationNotFound, InvalidTransition),
)
async def cancel(
    reservation_id: PathText, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ReservationOut:
    """Cancel a held or confirmed reservation; the slot becomes free again."""
    return await _move(session, tenant.id, reservation_id, "cancelled", clock.now())


@router.patch(
    "/reservations/{reservation_id}", responses=problems(ReservationNotFound, InvalidTransition)
)
async def patch_reservation(
    reservation_id: PathText,
    body: ReservationPatch,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> ReservationOut:
    """Set a reservation's status: `confirmed`, `cancelled`, `denied`, `held`, `expired`, and
    after the visit `arrived`, `fulfilled` or `no_show` (AWS and FHIR spellings such as
    PENDING, BOOKED or noshow are read in any case). A transition the current status does
    not allow is a 409."""
    now = clock.now()
    moved = await transitions.set_status(session, tenant.id, reservation_id, body.status, now=now)
    return render(moved, now)


@router.get("/appointments", responses=problems(ProviderNotFound))
async def list_appointments(
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    provider_id: QueryText = None,
    start: Annotated[
        DayOrInstant | None,
        Query(
            description="An instant, or a date: from local midnight (the provider's zone "
            "with provider_id, else booking.default_tz)"
        ),
    ] = None,
    end: Annotated[
        DayOrInstant | None,
        Query(description="An instant, or a date: to the end of that local day (included)"),
    ] = None,
    status: Annotated[
        Literal[
            "held",
            "confirmed",
            "expired",
            "denied",
            "cancelled",
            "arrived",
            "fulfilled",
            "no_show",
            "active",
        ]
        | None,
        Query(description="`active`: held or confirmed"),
    ] = None,
    limit: Limit = 100,
    cursor: QueryText = None,
) -> AppointmentPage:
    """Appointments ordered by slot start, filtered by provider, time range (instants, or
    dates meaning local days) and status (`active` = held or confirmed)."""
    now = clock.now()
    zone = await _zone_for_days(session, tenant.id, provider_id, policy.booking, start, end)
    rows, position = await reservations.list_appointments(
        session,
        tenant.id,
        reservations.AppointmentFilter(
            provider_id,
            None if start is None else bound_instant(start, zone, end=False),
            None if end is None else bound_instant(end, zone, end=True),
            status,
        ),
        now=now,
        limit=limit,
        after=cursors.decode(cursor),
    )
    return AppointmentPage(
        items=[render(a, now) for a in rows], next_cursor=cursors.encode(position)
    )


async def _move(
    session: SessionDep, tenant_id: str, reservation_id: str, target: str, now: datetime
) -> ReservationOut:
    appointment = await transitions.move(session, tenant_id, reservation_id, target, now=now)
    return render(appointment, now)


async def _zone_for_days(
    session: SessionDep,
    tenant_id: str,
    provider_id: str | None,
    policy: BookingPolicy,
    *bounds: Bound | None,
) -> ZoneInfo:
    """The zone whose local days date-only bounds mean: the provider's, else the tenant's."""
    if provider_id is None or not any(type(b) is date for b in bounds):
        return ZoneInfo(policy.default_tz)
    return ZoneInfo((await service.require_provider(session, tenant_id, provider_id)).tz)


@router.get(
    "/reservations/{reservation_id}/events",
    tags=["events"],
    responses=problems(ReservationNotFound),
)
async def reservation_events(
    reservation_id: str,
    tenant: TenantDep,
    session: SessionDep,
    after: Cursor = None,
    limit: EventLimit = 100,
) -> EventPage:
    """The reservation's audit trail: every change, who made it, oldest first."""
    await reservations.get(session, tenant.id, reservation_id)
    subject = ("appointment", reservation_id)
    return await subject_events(session, tenant.id, subject, after=after, limit=limit)
