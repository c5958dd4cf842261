"""Jobs: what the dispatcher has queued, is running and has given up on; retry and cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from starlette.responses import RedirectResponse, Response

from caretime.deps import ClockDep, SessionDep
from caretime.web import queries
from caretime.web.auth import ActorDep, Viewer, ViewerDep
from caretime.web.routing import web_router

router = web_router()
Status = Literal["queued", "running", "failed"]
StatusQuery = Annotated[Status, Query()]


@router.get("/ui/jobs")
async def jobs_page(
    viewer: ViewerDep, db: SessionDep, clock: ClockDep, status: StatusQuery = "queued"
) -> Response:
    return await _render(viewer, db, clock, status, "jobs.html")


@router.get("/ui/jobs/table")
async def jobs_table(
    viewer: ViewerDep, db: SessionDep, clock: ClockDep, status: StatusQuery = "queued"
) -> Response:
    return await _render(viewer, db, clock, status, "_jobs_table.html")


@router.post("/ui/jobs/{job_id}/cancel")
async def cancel_job(
    viewer: ActorDep, db: SessionDep, job_id: int, status: StatusQuery = "queued"
) -> Response:
    await queries.cancel_job(db, viewer.tenant_id, job_id)
    return _back(status)


@router.post("/ui/jobs/{job_id}/retry")
async def retry_job(
    viewer: ActorDep, db: SessionDep, job_id: int, status: StatusQuery = "failed"
) -> Response:
    await queries.retry_job(db, viewer.tenant_id, job_id)
    return _back(status)


async def _render(
    viewer: Viewer, db: SessionDep, clock: ClockDep, status: Status, template: str
) -> Response:
    now = clock.now()
    health = await queries.job_health(db, viewer.tenant_id, now=now)
    jobs = await queries.list_jobs(db, viewer.tenant_id, status)
    return viewer.render(template, status=status, jobs=jobs, health=health, now=now)


def _back(status: Status) -> Response:
    return RedirectResponse(f"/ui/jobs?status={status}", status_code=303)
