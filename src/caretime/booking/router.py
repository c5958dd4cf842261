"""Booking endpoints: providers, availability, slots, reservations, appointments. Thin: each
parses, calls one service function, and renders."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, status
from pydantic import AwareDatetime

from caretime.booking import cursors, lifecycle, reservations, service, slots
from caretime.booking.errors import RangeTooLong
from caretime.booking.models import Appointment
from caretime.booking.schemas import (
    AppointmentPage,
    AvailabilityChangeOut,
    AvailabilityOut,
    FhirStatus,
    ProviderIn,
    ProviderOut,
    ProviderPage,
    ReservationIn,
    ReservationOut,
    ReservationPatch,
    SlotOut,
    SlotPage,
    TemplateOut,
    WindowIn,
    WindowOut,
)
from caretime.booking.service import minute_text, template_fields
from caretime.deps import ClockDep, SessionDep
from caretime.events.router import Cursor, EventPage, subject_events
from caretime.events.router import Limit as EventLimit
from caretime.tenancy.auth import PolicyDep, TenantDep

router = APIRouter(tags=["booking"])
Limit = Annotated[int, Query(ge=1, le=1000)]
Force = Annotated[bool, Query(description="cancel confirmed appointments in removed time")]
MAX_AVAILABILITY_DAYS = 366


@router.post("/providers", status_code=status.HTTP_201_CREATED)
async def create_provider(
    body: ProviderIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ProviderOut:
    provider = await service.create_provider(session, tenant.id, body, now=clock.now())
    return ProviderOut.model_validate(provider)


@router.get("/providers")
async def list_providers(
    tenant: TenantDep, session: SessionDep, limit: Limit = 100, cursor: str | None = None
) -> ProviderPage:
    rows, next_cursor = await service.list_providers(session, tenant.id, limit=limit, after=cursor)
    return ProviderPage(
        items=[ProviderOut.model_validate(p) for p in rows], next_cursor=next_cursor
    )


@router.get("/providers/{provider_id}")
async def get_provider(provider_id: str, tenant: TenantDep, session: SessionDep) -> ProviderOut:
    return ProviderOut.model_validate(
        await service.require_provider(session, tenant.id, provider_id)
    )


@router.post("/providers/{provider_id}/availability")
async def add_availability(
    provider_id: str,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    body: Annotated[WindowIn | list[WindowIn], Body()],
    force: Force = False,
) -> AvailabilityChangeOut:
    items = body if isinstance(body, list) else [body]
    change = await service.change_availability(
        session, tenant.id, policy.booking, provider_id, items, force=force, now=clock.now()
    )
    return AvailabilityChangeOut(
        provider_id=provider_id,
        templates=[TemplateOut.model_validate(template_fields(t)) for t in change.templates],
        cancelled_appointments=[render(a, clock.now()) for a in change.cancelled],
    )


@router.get("/providers/{provider_id}/availability")
async def get_availability(
    provider_id: str,
    tenant: TenantDep,
    session: SessionDep,
    start: Annotated[date, Query(description="first local date")],
    end: Annotated[date, Query(description="last local date (inclusive)")],
) -> AvailabilityOut:
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


@router.delete("/providers/{provider_id}/availability/templates/{template_id}")
async def delete_template(
    provider_id: str,
    template_id: str,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
    force: Force = False,
) -> AvailabilityChangeOut:
    cancelled = await service.delete_template(
        session, tenant.id, provider_id, template_id, force=force, now=clock.now()
    )
    return AvailabilityChangeOut(
        provider_id=provider_id,
        templates=[],
        cancelled_appointments=[render(a, clock.now()) for a in cancelled],
    )


@router.get("/slots")
async def get_slots(
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    start: Annotated[AwareDatetime | None, Query(description="default: now")] = None,
    end: Annotated[AwareDatetime | None, Query(description="default: start + 7 days")] = None,
    provider_id: Annotated[list[str] | None, Query()] = None,
    limit: Limit = 500,
    cursor: str | None = None,
) -> SlotPage:
    start = start or clock.now()
    found, position = await slots.find_slots(
        session,
        tenant.id,
        policy.booking,
        provider_ids=provider_id,
        start=start,
        end=end or start + timedelta(days=7),
        now=clock.now(),
        limit=limit,
        after=cursors.decode(cursor),
    )
    return SlotPage(
        slots=[SlotOut(provider_id=s.provider_id, start=s.start, end=s.end) for s in found],
        next_cursor=cursors.encode(position),
    )


@router.post("/reservations", status_code=status.HTTP_201_CREATED)
async def reserve(
    body: ReservationIn,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ReservationOut:
    request = reservations.ReservationRequest(
        body.provider_id, body.slot_start, body.client_id, idempotency_key, body.phone
    )
    now = clock.now()
    appointment = await reservations.reserve(session, tenant.id, policy.booking, request, now=now)
    return render(appointment, now)


@router.get("/reservations/{reservation_id}")
async def get_reservation(
    reservation_id: str, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ReservationOut:
    return render(await reservations.get(session, tenant.id, reservation_id), clock.now())


@router.post("/reservations/{reservation_id}/confirm")
async def confirm(
    reservation_id: str, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ReservationOut:
    return await _move(session, tenant.id, reservation_id, "confirmed", clock.now())


@router.post("/reservations/{reservation_id}/cancel")
async def cancel(
    reservation_id: str, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ReservationOut:
    return await _move(session, tenant.id, reservation_id, "cancelled", clock.now())


@router.patch("/reservations/{reservation_id}")
async def patch_reservation(
    reservation_id: str,
    body: ReservationPatch,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> ReservationOut:
    return await _move(session, tenant.id, reservation_id, body.status, clock.now())


@router.get("/appointments")
async def list_appointments(
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
    provider_id: str | None = None,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    status: Annotated[
        str | None,
        Query(pattern="^(held|confirmed|expired|denied|cancelled|active)$"),
    ] = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> AppointmentPage:
    now = clock.now()
    rows, position = await reservations.list_appointments(
        session,
        tenant.id,
        reservations.AppointmentFilter(provider_id, start, end, status),
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
    appointment = await lifecycle.move(session, tenant_id, reservation_id, target, now=now)
    return render(appointment, now)


def render(appointment: Appointment, now: datetime) -> ReservationOut:
    current = lifecycle.effective_status(appointment, now)
    fhir_appointment, fhir_slot = lifecycle.FHIR[current]
    return ReservationOut(
        id=appointment.id,
        status=current,
        expires_at=appointment.hold_expires_at if current == "held" else None,
        provider_id=appointment.provider_id,
        slot_start=appointment.slot_start,
        slot_end=appointment.slot_end,
        client_id=appointment.client_id,
        created_at=appointment.created_at,
        confirmed_at=appointment.confirmed_at,
        fhir=FhirStatus(appointment=fhir_appointment, slot=fhir_slot),
    )


@router.get("/reservations/{reservation_id}/events", tags=["events"])
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
