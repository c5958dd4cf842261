"""Shifts: create one, start its fan-out, and watch the timeline as caregivers reply."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Form, Query
from starlette.responses import RedirectResponse, Response

from caretime.deps import ClockDep, SessionDep
from caretime.shifts import candidates, changes, fanout, service
from caretime.shifts.progress import maybe_fanout_state
from caretime.shifts.schemas import ShiftCreate
from caretime.shifts.timeline import shift_timeline
from caretime.web.auth import ActorDep, Viewer, ViewerDep
from caretime.web.forms import build, local_instant
from caretime.web.routing import web_router
from caretime.web.shift_queries import caregiver_names

router = web_router()
ShiftStatus = Literal["open", "filled", "cancelled", "expired"]
PAGE_SIZE = 100


@router.get("/ui/shifts")
async def shifts_page(
    viewer: ViewerDep,
    db: SessionDep,
    status: Annotated[ShiftStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    rows, next_cursor = await service.list_shifts(
        db, viewer.tenant_id, status=status, limit=PAGE_SIZE, cursor=cursor
    )
    names = await caregiver_names(db, viewer.tenant_id, (r.assigned_caregiver_id for r in rows))
    return viewer.render(
        "shifts.html",
        names=names,
        shifts=[service.present(row) for row in rows],
        status=status,
        next_cursor=next_cursor,
        default_tz=viewer.policy.shifts.default_tz,
    )


@router.post("/ui/shifts")
async def create_shift(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    role_required: Annotated[str, Form()],
    start: Annotated[str, Form()],
    end: Annotated[str, Form()],
    tz: Annotated[str, Form()],
    shift_id: Annotated[str, Form()] = "",
    location: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
) -> Response:
    body = build(
        ShiftCreate,
        {
            "id": shift_id,
            "role_required": role_required,
            "start_time": local_instant(start, tz),
            "end_time": local_instant(end, tz),
            "tz": tz,
            "location": location,
            "notes": notes,
        },
    )
    shift = await service.create_shift(
        db, viewer.tenant_id, body, policy=viewer.policy.shifts, now=clock.now()
    )
    return _to_shift(shift.id)


@router.get("/ui/shifts/{shift_id}")
async def shift_page(viewer: ViewerDep, db: SessionDep, clock: ClockDep, shift_id: str) -> Response:
    return await _render_shift(viewer, db, clock, shift_id, "shift.html")


@router.get("/ui/shifts/{shift_id}/live")
async def shift_live(viewer: ViewerDep, db: SessionDep, clock: ClockDep, shift_id: str) -> Response:
    return await _render_shift(viewer, db, clock, shift_id, "_shift_live.html")


@router.post("/ui/shifts/{shift_id}/fanout")
async def start_fanout(
    viewer: ActorDep, db: SessionDep, clock: ClockDep, shift_id: str
) -> Response:
    await fanout.start_fanout(
        db, viewer.tenant_id, shift_id, policy=viewer.policy.shifts, now=clock.now()
    )
    return _to_shift(shift_id)


@router.post("/ui/shifts/{shift_id}/cancel")
async def cancel_shift(
    viewer: ActorDep, db: SessionDep, clock: ClockDep, shift_id: str
) -> Response:
    await changes.cancel_shift(
        db, viewer.tenant_id, shift_id, policy=viewer.policy.shifts, now=clock.now()
    )
    return _to_shift(shift_id)


async def _render_shift(
    viewer: Viewer, db: SessionDep, clock: ClockDep, shift_id: str, template: str
) -> Response:
    shift = await service.require_shift(db, viewer.tenant_id, shift_id)
    timeline = await shift_timeline(db, viewer.tenant_id, shift_id)
    people = [shift.assigned_caregiver_id, *(entry.caregiver_id for entry in timeline.entries)]
    return viewer.render(
        template,
        shift=service.present(shift),
        progress=await maybe_fanout_state(db, shift),
        timeline=timeline,
        names=await caregiver_names(db, viewer.tenant_id, people),
        candidates=await candidates.list_candidates(
            db, viewer.tenant_id, shift_id, policy=viewer.policy.shifts, now=clock.now()
        ),
    )


def _to_shift(shift_id: str) -> Response:
    return RedirectResponse(f"/ui/shifts/{shift_id}", status_code=303)
