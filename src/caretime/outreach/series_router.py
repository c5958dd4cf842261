"""HTTP endpoints for recurring call series. Registered before /calls/{call_id}, so that
/calls/series is never read as a call id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from caretime.deps import ClockDep, SessionDep
from caretime.events.router import Cursor, EventPage, subject_events
from caretime.events.router import Limit as EventLimit
from caretime.openapi import problems
from caretime.outreach import series_actions
from caretime.outreach.errors import SeriesNotFound
from caretime.outreach.models import Call, CallSeries
from caretime.outreach.schemas import OccurrenceOut, SeriesOut, SeriesPage, SeriesStatus
from caretime.storable import PathText, QueryText
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["outreach"])


@router.get("/calls/series")
async def list_series(
    tenant: TenantDep,
    session: SessionDep,
    status: SeriesStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: QueryText = None,
) -> SeriesPage:
    """Recurring call series, filtered by status, a page at a time."""
    found, next_cursor = await series_actions.list_series(
        session, tenant.id, status=status, limit=limit, cursor=cursor
    )
    return SeriesPage(items=[series_out(series) for series in found], next_cursor=next_cursor)


@router.get("/calls/series/{series_id}", responses=problems(SeriesNotFound))
async def get_series(series_id: PathText, tenant: TenantDep, session: SessionDep) -> SeriesOut:
    """One series: its rule, the next occurrence not planned yet, the live one, and the
    latest occurrences with their outcomes (all of them: `GET /calls?series_id=`)."""
    series, calls = await series_actions.get_series(session, tenant.id, series_id)
    return series_out(series, calls)


@router.post("/calls/series/{series_id}/cancel", responses=problems(SeriesNotFound))
async def cancel_series(
    series_id: PathText, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> SeriesOut:
    """Stop the series: its pending occurrence is cancelled and no other is planned. An
    occurrence already ringing goes on to its end. Cancelling again changes nothing."""
    series = await series_actions.cancel_series(session, tenant.id, series_id, now=clock.now())
    _, calls = await series_actions.get_series(session, tenant.id, series_id)
    return series_out(series, calls)


@router.get("/calls/series/{series_id}/events", tags=["events"], responses=problems(SeriesNotFound))
async def series_events(
    series_id: PathText,
    tenant: TenantDep,
    session: SessionDep,
    after: Cursor = None,
    limit: EventLimit = 100,
) -> EventPage:
    """The series' audit trail (created, occurrences skipped, finished, cancelled)."""
    await series_actions.get_series(session, tenant.id, series_id)
    return await subject_events(
        session, tenant.id, ("call_series", series_id), after=after, limit=limit
    )


def series_out(series: CallSeries, calls: Sequence[Call] | None = None) -> SeriesOut:
    return SeriesOut(
        id=series.id,
        status=series.status,
        rule=series.rule,
        tz=series.tz,
        dtstart=series.dtstart,
        next_occurrence=series.next_at,
        next_occurrence_local=series.next_local,
        current_call_id=series.current_call_id,
        occurrences=series.occurrences,
        skipped=series.skipped,
        ended_reason=series.ended_reason,
        name=series.name,
        phone_e164=series.phone_e164,
        purpose=series.purpose or None,
        batch_id=series.batch_id,
        created_at=series.created_at,
        updated_at=series.updated_at,
        calls=None if calls is None else [OccurrenceOut.model_validate(c) for c in calls],
    )
