"""Caregivers: the people a shift's fan-out reaches."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query
from starlette.responses import RedirectResponse, Response

from caretime.deps import ClockDep, SessionDep
from caretime.shifts import caregivers
from caretime.shifts.schemas import CaregiverCreate
from caretime.web.auth import ActorDep, ViewerDep
from caretime.web.forms import build, text_list
from caretime.web.routing import web_router

router = web_router()
PAGE_SIZE = 200


@router.get("/ui/caregivers")
async def caregivers_page(
    viewer: ViewerDep, db: SessionDep, cursor: Annotated[str | None, Query()] = None
) -> Response:
    rows, next_cursor = await caregivers.list_caregivers(
        db, viewer.tenant_id, role=None, active=None, limit=PAGE_SIZE, cursor=cursor
    )
    return viewer.render("caregivers.html", caregivers=rows, next_cursor=next_cursor)


@router.post("/ui/caregivers")
async def add_caregiver(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    name: Annotated[str, Form()],
    phone: Annotated[str, Form()],
    roles: Annotated[str, Form()],
    caregiver_id: Annotated[str, Form()] = "",
) -> Response:
    body = build(
        CaregiverCreate,
        {"id": caregiver_id, "name": name, "phone": phone, "roles": text_list(roles)},
    )
    await caregivers.create_caregiver(db, viewer.tenant_id, body, now=clock.now())
    return RedirectResponse("/ui/caregivers", status_code=303)
