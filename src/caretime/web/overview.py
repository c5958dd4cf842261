"""The overview: today's calls, appointments and shifts, the dispatcher's health, and the
calls scheduled for the next 48 hours by time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from starlette.responses import Response

from caretime.deps import ClockDep, SessionDep
from caretime.web import booking_queries, outreach_queries, queries, shift_queries
from caretime.web.auth import Viewer, ViewerDep
from caretime.web.charts import count_by_hour, floor_hour, hour_chart, tick_bars
from caretime.web.routing import web_router

router = web_router()
CHART_HOURS = 48
# How the overview groups call statuses into what a coordinator asks about.
CALL_GROUPS = {
    "completed": ("completed",),
    "unanswered": ("no_answer", "busy"),
    "failed": ("failed", "expired"),
}


@router.get("/")
async def overview(viewer: ViewerDep, db: SessionDep, clock: ClockDep) -> Response:
    now = clock.now()
    context = {
        **await _today(viewer, db, now),
        **await _next_hours(viewer, db, now),
        "health": await queries.job_health(db, viewer.tenant_id, now=now),
        "now": now,
    }
    return viewer.render("overview.html", **context)


@router.get("/ui/overview/today")
async def today(viewer: ViewerDep, db: SessionDep, clock: ClockDep) -> Response:
    return viewer.render("_today.html", **await _today(viewer, db, clock.now()))


@router.get("/ui/overview/dispatcher")
async def dispatcher_health(viewer: ViewerDep, db: SessionDep, clock: ClockDep) -> Response:
    health = await queries.job_health(db, viewer.tenant_id, now=clock.now())
    return viewer.render("_job_health.html", health=health)


async def _today(viewer: Viewer, db: SessionDep, now: datetime) -> dict[str, Any]:
    """What happens in the viewer's calendar day (in the viewer's zone): calls due today,
    holds made and visits confirmed today, shifts filled today; plus what is live now."""
    midnight = datetime.combine(now.astimezone(viewer.zone).date(), time(0), viewer.zone)
    span = {"start": midnight, "end": midnight + timedelta(days=1)}
    calls = await outreach_queries.status_counts(db, viewer.tenant_id, **span)
    grouped = {name: sum(calls.get(s, 0) for s in group) for name, group in CALL_GROUPS.items()}
    return {
        "calls": {"scheduled": sum(calls.values()), **grouped},
        "appointments": await booking_queries.appointment_counts(
            db, viewer.tenant_id, now=now, **span
        ),
        "shifts": await shift_queries.shift_counts(db, viewer.tenant_id, now=now, **span),
    }


async def _next_hours(viewer: Viewer, db: SessionDep, now: datetime) -> dict[str, Any]:
    end = now + timedelta(hours=CHART_HOURS)
    per_hour = await outreach_queries.pending_per_hour(
        db, viewer.tenant_id, start=floor_hour(now), end=end
    )
    chart = hour_chart(count_by_hour(per_hour, start=now, hours=CHART_HOURS))
    return {"chart": chart, "ticks": tick_bars(chart)}
