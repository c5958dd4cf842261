"""Endpoints that change a reservation beyond its status: its history and rescheduling."""

from __future__ import annotations

from fastapi import APIRouter

from caretime.booking import history, reschedule
from caretime.booking.errors import (
    DayFull,
    InvalidTransition,
    OffGrid,
    OutsideAvailability,
    ProviderNotFound,
    ReservationNotFound,
    SlotTaken,
    TooLittleNotice,
    VisitTypeNotFound,
)
from caretime.booking.rendering import render
from caretime.booking.schemas import HistoryEntry, RescheduleIn, ReservationOut
from caretime.deps import ClockDep, SessionDep
from caretime.openapi import problems
from caretime.storable import PathText
from caretime.tenancy.auth import PolicyDep, TenantDep

router = APIRouter(tags=["booking"])


@router.get("/reservations/{reservation_id}/history", responses=problems(ReservationNotFound))
async def get_history(
    reservation_id: PathText, tenant: TenantDep, session: SessionDep
) -> list[HistoryEntry]:
    """The reservation's booking history, oldest first: each status change, move, reminder
    and outcome, with who made it (staff, the patient by SMS, or the system)."""
    events = await history.history(session, tenant.id, reservation_id)
    return [HistoryEntry.model_validate(event) for event in events]


@router.post(
    "/reservations/{reservation_id}/reschedule",
    responses=problems(
        ReservationNotFound,
        ProviderNotFound,
        VisitTypeNotFound,
        InvalidTransition,
        SlotTaken,
        DayFull,
        TooLittleNotice,
        OffGrid,
        OutsideAvailability,
    ),
)
async def reschedule_reservation(
    reservation_id: PathText,
    body: RescheduleIn,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
) -> ReservationOut:
    """Move a held or confirmed reservation to another free slot (of the same provider unless
    `provider_id` says otherwise) in one step: the old time is freed only if the new one is
    taken, so a failed move (409 taken, 422 not bookable) leaves the reservation as it was."""
    now = clock.now()
    move = reschedule.Move(body.slot_start, body.provider_id)
    appointment = await reschedule.reschedule(
        session, tenant.id, policy.booking, reservation_id, move, now=now
    )
    return render(appointment, now)
