"""HTTP endpoints for caregivers, shifts, fan-outs and timelines (thin: services do the work)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status

from caretime.deps import ClockDep, SessionDep
from caretime.events.router import Cursor, EventPage, subject_events
from caretime.events.router import Limit as EventLimit
from caretime.openapi import problems
from caretime.shifts import candidates, caregivers, changes, edits, fanout, release, service
from caretime.shifts.caregivers import CaregiverExists, CaregiverNotFound
from caretime.shifts.progress import maybe_fanout_state
from caretime.shifts.schemas import (
    NO_NUL,
    CandidateList,
    CaregiverCreate,
    CaregiverOut,
    CaregiverPage,
    CaregiverPatch,
    FanOutOut,
    ShiftCreate,
    ShiftOut,
    ShiftPage,
    ShiftPatch,
    Timeline,
    UnassignBody,
)
from caretime.shifts.service import ShiftExists, ShiftNotFound, ShiftNotOpen, ZoneMismatch
from caretime.shifts.timeline import shift_timeline
from caretime.tenancy.auth import PolicyDep, TenantDep

router = APIRouter(tags=["shifts"])
Limit = Annotated[int, Query(ge=1, le=500)]
ShiftId = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
CaregiverId = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
Text = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
ShiftStatus = Literal["open", "filled", "cancelled", "expired"]


@router.post(
    "/caregivers", responses=problems(CaregiverExists), status_code=status.HTTP_201_CREATED
)
async def create_caregiver(
    body: CaregiverCreate, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> CaregiverOut:
    """Register a caregiver: name, phone (any format a person would write; stored as E.164),
    roles. `id` is optional and opaque; an id already used is a 409."""
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
    """Caregivers, filtered by role and active flag, a page at a time."""
    items, next_cursor = await caregivers.list_caregivers(
        session, tenant.id, role=role, active=active, limit=limit, cursor=cursor
    )
    return CaregiverPage(items=items, next_cursor=next_cursor)


@router.get("/caregivers/{caregiver_id}", responses=problems(CaregiverNotFound))
async def get_caregiver(
    caregiver_id: CaregiverId, tenant: TenantDep, session: SessionDep
) -> CaregiverOut:
    """One caregiver by id."""
    return await caregivers.get_caregiver(session, tenant.id, caregiver_id)


@router.patch("/caregivers/{caregiver_id}", responses=problems(CaregiverNotFound))
async def update_caregiver(
    caregiver_id: CaregiverId,
    patch: CaregiverPatch,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
) -> CaregiverOut:
    """Change a caregiver's name, phone, roles or active flag; fields not given stay as they
    are."""
    return await caregivers.update_caregiver(
        session, tenant.id, caregiver_id, patch, now=clock.now()
    )


@router.post("/shifts", responses=problems(ShiftExists), status_code=status.HTTP_201_CREATED)
async def create_shift(
    body: ShiftCreate, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> ShiftOut:
    """Post an open shift: the role it needs and its start and end. `id` is optional and
    opaque; an id already used is a 409."""
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
    """Shifts, filtered by status, a page at a time."""
    rows, next_cursor = await service.list_shifts(
        session, tenant.id, status=status, limit=limit, cursor=cursor
    )
    return ShiftPage(items=[service.present(s) for s in rows], next_cursor=next_cursor)


@router.get("/shifts/{shift_id}", responses=problems(ShiftNotFound))
async def get_shift(shift_id: ShiftId, tenant: TenantDep, session: SessionDep) -> ShiftOut:
    """One shift with its status, assigned caregiver and fan-out progress."""
    shift = await service.require_shift(session, tenant.id, shift_id)
    progress = await maybe_fanout_state(session, shift)
    return service.present(shift).model_copy(update={"fanout": progress})


@router.patch("/shifts/{shift_id}", responses=problems(ShiftNotFound, ShiftNotOpen, ZoneMismatch))
async def update_shift(
    shift_id: ShiftId,
    patch: ShiftPatch,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
) -> ShiftOut:
    """Change an open or filled shift before it starts. A filled shift's assignee is asked to
    reply YES to keep it by `reconfirm_by`; without an answer it is released and re-filled."""
    shift = await edits.update_shift(
        session, tenant.id, shift_id, patch, policy=policy.shifts, now=clock.now()
    )
    return service.present(shift)


@router.post(
    "/shifts/{shift_id}/fanout",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(ShiftNotFound, ShiftNotOpen),
)
async def start_fanout(
    shift_id: ShiftId, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> FanOutOut:
    """Start the fan-out, or report the one already started without sending anything."""
    return await fanout.start_fanout(
        session, tenant.id, shift_id, policy=policy.shifts, now=clock.now()
    )


@router.post("/shifts/{shift_id}/cancel", responses=problems(ShiftNotFound, ShiftNotOpen))
async def cancel_shift(
    shift_id: ShiftId, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> ShiftOut:
    """Cancel an open shift, or a filled one before it starts: no further rounds go out and
    the assignee (and, per policy, everyone with a live offer) is told by SMS. Cancelling twice
    is harmless; a shift that expired or has started is a 409."""
    shift = await changes.cancel_shift(
        session, tenant.id, shift_id, policy=policy.shifts, now=clock.now()
    )
    return service.present(shift)


@router.post("/shifts/{shift_id}/unassign", responses=problems(ShiftNotFound, ShiftNotOpen))
async def unassign(
    shift_id: ShiftId,
    body: UnassignBody,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
) -> ShiftOut:
    """Take the assignee off a filled shift (told by SMS); it opens and is re-filled per policy."""
    shift = await release.unassign(
        session, tenant.id, shift_id, body.reason, policy=policy.shifts, now=clock.now()
    )
    return service.present(shift)


@router.get("/shifts/{shift_id}/candidates", responses=problems(ShiftNotFound))
async def list_candidates(
    shift_id: ShiftId, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> CandidateList:
    """Every caregiver with the shift's role: offered, or why not."""
    return await candidates.list_candidates(
        session, tenant.id, shift_id, policy=policy.shifts, now=clock.now()
    )


@router.get("/shifts/{shift_id}/timeline", responses=problems(ShiftNotFound))
async def get_timeline(shift_id: ShiftId, tenant: TenantDep, session: SessionDep) -> Timeline:
    """What happened to a shift, in order: the offers of each round and channel, the
    replies, the assignment."""
    return await shift_timeline(session, tenant.id, shift_id)


@router.get("/shifts/{shift_id}/events", tags=["events"], responses=problems(ShiftNotFound))
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
