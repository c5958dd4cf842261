"""Calls: schedule one (a time, or as soon as allowed), find and watch them, reschedule,
call now, cancel, and see every attempt with its provider events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Form, Query
from starlette.responses import RedirectResponse, Response

from caretime.deps import ClockDep, SessionDep
from caretime.errors import InvalidInput
from caretime.messaging.repository import MessageRepository
from caretime.outreach import calls as call_service
from caretime.outreach.schemas import CallIn
from caretime.web import outreach_queries
from caretime.web.auth import ActorDep, Viewer, ViewerDep
from caretime.web.forms import build
from caretime.web.routing import web_router

router = web_router()
CALL_STATUSES = (
    "scheduled", "dispatching", "ringing", "in_progress", "completed",
    "no_answer", "busy", "failed", "cancelled", "expired",
)  # fmt: skip
PAGE_SIZE = 50
OptionalQuery = Annotated[str | None, Query()]


async def _listing(
    viewer: ViewerDep,
    db: SessionDep,
    status: OptionalQuery = None,
    q: OptionalQuery = None,
    batch_id: OptionalQuery = None,
    cursor: OptionalQuery = None,
) -> dict[str, Any]:
    """The calls table's rows and filters, from the query string (page and live table)."""
    calls, next_cursor = await outreach_queries.search_calls(
        db,
        viewer.tenant_id,
        status=status or None,
        text=q or None,
        batch_id=batch_id or None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    filters = {"status": status or "", "q": q or "", "batch_id": batch_id or ""}
    return {"calls": calls, "next_cursor": next_cursor, "filters": filters}


ListingDep = Annotated[dict[str, Any], Depends(_listing)]


@router.get("/ui/calls")
async def calls_page(viewer: ViewerDep, listing: ListingDep) -> Response:
    return viewer.render("calls.html", statuses=CALL_STATUSES, **listing)


@router.get("/ui/calls/table")
async def calls_table(viewer: ViewerDep, listing: ListingDep) -> Response:
    return viewer.render("_calls_table.html", **listing)


@router.post("/ui/calls")
async def schedule_call(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    name: Annotated[str, Form()],
    phone: Annotated[str, Form()],
    when: Annotated[str, Form()] = "now",
    at: Annotated[str, Form()] = "",
    tz: Annotated[str, Form()] = "",
) -> Response:
    scheduled = _wall_time(at) if when == "at" else None
    body = build(CallIn, {"name": name, "phone": phone, "scheduled": scheduled, "tz": tz})
    place = call_service.create_call if when == "at" else call_service.call_now_or_earliest
    call = await place(db, viewer.tenant_id, viewer.policy.calling, body, now=clock.now())
    return _to_call(call.id)


@router.get("/ui/calls/{call_id}")
async def call_page(viewer: ViewerDep, db: SessionDep, call_id: str) -> Response:
    return viewer.render("call.html", **await _detail(viewer, db, call_id))


@router.get("/ui/calls/{call_id}/live")
async def call_live(viewer: ViewerDep, db: SessionDep, call_id: str) -> Response:
    return viewer.render("_call_live.html", **await _detail(viewer, db, call_id))


@router.post("/ui/calls/{call_id}/reschedule")
async def reschedule_call(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    call_id: str,
    at: Annotated[str, Form()],
    tz: Annotated[str, Form()] = "",
) -> Response:
    await call_service.reschedule(
        db,
        viewer.tenant_id,
        viewer.policy.calling,
        call_id,
        at=_wall_time(at),
        tz=tz or None,
        now=clock.now(),
    )
    return _to_call(call_id)


@router.post("/ui/calls/{call_id}/dispatch")
async def call_now(viewer: ActorDep, db: SessionDep, clock: ClockDep, call_id: str) -> Response:
    await call_service.dispatch_now(
        db,
        viewer.tenant_id,
        viewer.policy.calling,
        call_id,
        now=clock.now(),
        viewer_zone=viewer.zone,
    )
    return _to_call(call_id)


@router.post("/ui/calls/{call_id}/cancel")
async def cancel_call(viewer: ActorDep, db: SessionDep, clock: ClockDep, call_id: str) -> Response:
    await call_service.cancel(db, viewer.tenant_id, call_id, now=clock.now())
    return _to_call(call_id)


async def _detail(viewer: Viewer, db: SessionDep, call_id: str) -> dict[str, Any]:
    call = await call_service.get_call(db, viewer.tenant_id, call_id)
    attempts = await call_service.attempts_of(db, viewer.tenant_id, call_id)
    messages = MessageRepository(db, viewer.tenant_id)
    events = {a.message_id: await messages.events(a.message_id) for a in attempts if a.message_id}
    return {"call": call, "attempts": attempts, "events": events}


def _wall_time(value: str) -> datetime:
    """A `datetime-local` value: wall-clock time, its zone given separately."""
    try:
        wall = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("give the date and time of the call") from None
    if wall.tzinfo is not None:
        raise InvalidInput("give the time without an offset; the zone says where it is")
    return wall


def _to_call(call_id: str) -> Response:
    return RedirectResponse(f"/ui/calls/{call_id}", status_code=303)
