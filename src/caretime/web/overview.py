"""The overview: what is happening today, at a glance."""

from __future__ import annotations

from starlette.responses import Response

from caretime.deps import ClockDep, SessionDep
from caretime.web import queries
from caretime.web.auth import ViewerDep
from caretime.web.routing import web_router

router = web_router()


@router.get("/")
async def overview(viewer: ViewerDep, db: SessionDep, clock: ClockDep) -> Response:
    health = await queries.job_health(db, viewer.tenant_id, now=clock.now())
    return viewer.render("overview.html", health=health, now=clock.now())


@router.get("/ui/overview/dispatcher")
async def dispatcher_health(viewer: ViewerDep, db: SessionDep, clock: ClockDep) -> Response:
    health = await queries.job_health(db, viewer.tenant_id, now=clock.now())
    return viewer.render("_job_health.html", health=health)
