"""HTTP endpoints for caregivers, shifts, fan-outs and timelines (thin: services do the work)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status

from caretime.deps import ClockDep, SessionDep
from caretime.events.router import Cursor, EventPage, subject_events
from caretime.events.router import Limit as EventLimit
from caretime.shifts import caregivers, fanout, service
from caretime.shifts.progress import maybe_fanout_state
from caretime.shifts.schemas import (
    NO_NUL,
    CaregiverCreate,
    CaregiverOut,
    CaregiverPage,
    CaregiverPatch,
    FanOutOut,
    ShiftCreate,
    ShiftOut,
    ShiftPage,
    Timeline,
)
from caretime.shifts.timeline import shift_timeline
from caretime.tenancy.auth import PolicyDep, TenantDep

router = APIRouter(tags=["shifts"])
Limit = Annotated[int, Query(ge=1, le=500)]
ShiftId = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
CaregiverId = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
Text = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
ShiftStatus = Literal["open", "filled", "cancelled", "expired"]


@router.post("/caregivers", status_code=status.HTTP_201_CREATED)
async def create_caregiver(
    body: CaregiverCreate, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> CaregiverOut:
    return await caregivers.create_caregiver(session, tenant.id, body, now=clock.now())


@router.get("/caregivers")
async def list_caregivers(
    tenant: TenantDep,
    session: SessionDep,
    role: Text = None,
    active: bool | None = None,
    limit: Limit = 100,
    cursor: Text = None,
) -> CaregiverPage:
    items, next_cursor = await caregivers.list_caregivers(
        session, tenant.id, role=role, active=active, limit=limit, cursor=cursor
    )
    return CaregiverPage(items=items, next_cursor=next_cursor)


@router.get("/caregivers/{caregiver_id}")
async def get_caregiver(
    caregiver_id: CaregiverId, tenant: TenantDep, session: SessionDep
) -> CaregiverOut:
    return await caregivers.get_caregiver(session, tenant.id, caregiver_id)


@router.patch("/caregivers/{caregiver_id}")
async def update_caregiver(
    caregiver_id: CaregiverId,
    patch: CaregiverPatch,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> CaregiverOut:
    return await caregivers.update_caregiver(
        session, tenant.id, caregiver_id, patch, now=clock.now()
    )


@router.post("/shifts", status_code=status.HTTP_201_CREATED)
async def create_shift(
    body: ShiftCreate, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> ShiftOut:
    shift = await service.create_shift(
        session, tenant.id, body, policy=policy.shifts, now=clock.now()
    )
    return service.present(shift)


@router.get("/shifts")
async def list_shifts(
    tenant: TenantDep,
    session: SessionDep,
    status: ShiftStatus | None = None,
    limit: Limit = 100,
    cursor: Text = None,
) -> ShiftPage:
    rows, next_cursor = await service.list_shifts(
        session, tenant.id, status=status, limit=limit, cursor=cursor
    )
    return ShiftPage(items=[service.present(s) for s in rows], next_cursor=next_cursor)


@router.get("/shifts/{shift_id}")
async def get_shift(shift_id: ShiftId, tenant: TenantDep, session: SessionDep) -> ShiftOut:
    shift = await service.require_shift(session, tenant.id, shift_id)
    progress = await maybe_fanout_state(session, shift)
    return service.present(shift).model_copy(update={"fanout": progress})


@router.post(
    "/shifts/{shift_id}/fanout",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "Unknown shift"}, 409: {"description": "Shift not open"}},
)
async def start_fanout(
    shift_id: ShiftId, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> FanOutOut:
    """Start the fan-out, or report the one already started without sending anything."""
    return await fanout.start_fanout(
        session, tenant.id, shift_id, policy=policy.shifts, now=clock.now()
    )


@router.post("/shifts/{shift_id}/cancel")
async def cancel_shift(
    shift_id: ShiftId, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ShiftOut:
    shift = await service.cancel_shift(session, tenant.id, shift_id, now=clock.now())
    return service.present(shift)


@router.get("/shifts/{shift_id}/timeline")
async def get_timeline(shift_id: ShiftId, tenant: TenantDep, session: SessionDep) -> Timeline:
    return await shift_timeline(session, tenant.id, shift_id)


@router.get("/shifts/{shift_id}/events", tags=["events"])
async def shift_events(
    shift_id: ShiftId,
    tenant: TenantDep,
    session: SessionDep,
    after: Cursor = None,
    limit: EventLimit = 100,
) -> EventPage:
    """The shift's audit trail: every change, who made it, oldest first."""
    await service.require_shift(session, tenant.id, shift_id)
    return await subject_events(session, tenant.id, ("shift", shift_id), after=after, limit=limit)
