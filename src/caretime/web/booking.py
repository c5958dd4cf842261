"""Booking: providers, a week of a provider's availability (add and remove time), its free
slots, and its reservations."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Form, Query
from starlette.responses import RedirectResponse, Response

from caretime.booking import reservations, service, slots
from caretime.booking.availability import Window
from caretime.booking.router import render as present_reservation
from caretime.booking.schemas import DatedWindowIn, ProviderIn, WeeklyTemplateIn
from caretime.deps import ClockDep, SessionDep
from caretime.web.auth import ActorDep, Viewer, ViewerDep
from caretime.web.forms import build
from caretime.web.routing import web_router

router = web_router()
WeekQuery = Annotated[date | None, Query(description="any date in the week to show")]


@dataclass(frozen=True)
class Week:
    """Monday to Sunday on the provider's wall clock, and the instants that bound it."""

    first: date
    zone: ZoneInfo

    @classmethod
    def containing(cls, day: date, zone: ZoneInfo) -> Week:
        return cls(day - timedelta(days=day.weekday()), zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(7)]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.first + timedelta(days=7), time(0), self.zone)


@router.get("/ui/booking")
async def providers_page(
    viewer: ViewerDep, db: SessionDep, cursor: Annotated[str | None, Query()] = None
) -> Response:
    rows, next_cursor = await service.list_providers(db, viewer.tenant_id, limit=100, after=cursor)
    return viewer.render("providers.html", providers=rows, next_cursor=next_cursor)


@router.post("/ui/booking")
async def add_provider(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    name: Annotated[str, Form()],
    tz: Annotated[str, Form()],
    provider_id: Annotated[str, Form()] = "",
) -> Response:
    body = build(ProviderIn, {"id": provider_id, "name": name, "tz": tz})
    provider = await service.create_provider(db, viewer.tenant_id, body, now=clock.now())
    return to_provider(provider.id)


@router.get("/ui/booking/{provider_id}")
async def provider_page(
    viewer: ViewerDep, db: SessionDep, clock: ClockDep, provider_id: str, week: WeekQuery = None
) -> Response:
    context = await _week_context(viewer, db, clock, provider_id, week)
    return viewer.render("provider.html", **context)


@router.get("/ui/booking/{provider_id}/reservations")
async def reservations_fragment(
    viewer: ViewerDep, db: SessionDep, clock: ClockDep, provider_id: str, week: WeekQuery = None
) -> Response:
    context = await _week_context(viewer, db, clock, provider_id, week)
    return viewer.render("_reservations.html", **context)


@router.post("/ui/booking/{provider_id}/windows")
async def change_window(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    provider_id: str,
    day: Annotated[date, Form(alias="date")],
    start: Annotated[str, Form()] = "",
    end: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "add",
) -> Response:
    window = build(DatedWindowIn, {"date": day, "start": start, "end": end, "action": action})
    await _change(viewer, db, clock, provider_id, [window])
    return to_provider(provider_id, day)


@router.post("/ui/booking/{provider_id}/templates")
async def add_template(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    provider_id: str,
    start: Annotated[str, Form()],
    end: Annotated[str, Form()],
    valid_from: Annotated[date, Form()],
    weekdays: Annotated[list[str], Form()],
    valid_until: Annotated[str, Form()] = "",
) -> Response:
    fields = {"weekdays": weekdays, "start": start, "end": end, "from": valid_from}
    template = build(WeeklyTemplateIn, {**fields, "until": valid_until})
    await _change(viewer, db, clock, provider_id, [template])
    return to_provider(provider_id, valid_from)


@router.post("/ui/booking/{provider_id}/templates/{template_id}/delete")
async def delete_template(
    viewer: ActorDep, db: SessionDep, clock: ClockDep, provider_id: str, template_id: str
) -> Response:
    await service.delete_template(
        db, viewer.tenant_id, provider_id, template_id, force=False, now=clock.now()
    )
    return to_provider(provider_id)


async def _change(
    viewer: Viewer, db: SessionDep, clock: ClockDep, provider_id: str, items: list[Any]
) -> None:
    # Never force: taking time from under a confirmed appointment is refused with a reason.
    await service.change_availability(
        db,
        viewer.tenant_id,
        viewer.policy.booking,
        provider_id,
        items,
        force=False,
        now=clock.now(),
    )


async def _week_context(
    viewer: Viewer, db: SessionDep, clock: ClockDep, provider_id: str, day: date | None
) -> dict[str, Any]:
    now = clock.now()
    provider = await service.require_provider(db, viewer.tenant_id, provider_id)
    zone = ZoneInfo(provider.tz)
    # By default, the week of the earliest bookable moment, so free slots show at once.
    earliest = (now + viewer.policy.booking.min_notice).astimezone(zone).date()
    week = Week.containing(day or earliest, zone)
    windows = await service.effective(db, viewer.tenant_id, provider, week.first, week.days[-1])
    free, _ = await slots.find_slots(
        db,
        viewer.tenant_id,
        viewer.policy.booking,
        provider_ids=[provider.id],
        start=week.start,
        end=week.end,
        now=now,
        limit=7 * 24 * 60,
        after=None,
    )
    booked, _ = await reservations.list_appointments(
        db,
        viewer.tenant_id,
        reservations.AppointmentFilter(provider.id, week.start, week.end, None),
        now=now,
        limit=500,
        after=None,
    )
    today = now.astimezone(zone).date()
    return {
        "provider": provider,
        "week": week,
        # Forms add time from today (the provider's), or from the first day of a later week.
        "first_open_day": max(today, week.first),
        "windows": _by_day(windows),
        "templates": [
            service.template_fields(t)
            for t in await service.templates(db, viewer.tenant_id, provider.id)
        ],
        "free_slots": _slots_by_day(free, zone),
        "reservations": [present_reservation(a, now) for a in booked],
        "minute_text": service.minute_text,
        "now": now,
    }


def _by_day(windows: list[Window]) -> dict[date, list[Window]]:
    days: dict[date, list[Window]] = defaultdict(list)
    for window in windows:
        days[window.day].append(window)
    return days


def _slots_by_day(found: list[Any], zone: ZoneInfo) -> dict[date, list[Any]]:
    days: dict[date, list[Any]] = defaultdict(list)
    for slot in found:
        days[slot.start.astimezone(zone).date()].append(slot)
    return days


def to_provider(provider_id: str, day: date | None = None) -> Response:
    week = f"?week={day.isoformat()}" if day else ""
    return RedirectResponse(f"/ui/booking/{provider_id}{week}", status_code=303)
