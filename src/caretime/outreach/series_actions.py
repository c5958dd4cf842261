"""What callers and timers do with a recurring series: start one with `POST /calls`, move it
on when an occurrence ends or a waited-for one comes inside the horizon, cancel it (and its
pending occurrence), read and list."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.observability import log_event
from caretime.outreach import series as series_service
from caretime.outreach.calls import cancel as cancel_call
from caretime.outreach.calls import refuse_unwanted, screened
from caretime.outreach.errors import (
    CallAlreadyStarted,
    CallNotFound,
    DuplicateCall,
    NotSchedulable,
    SeriesNotFound,
)
from caretime.outreach.execution import calling_policy
from caretime.outreach.models import LIVE, Call, CallSeries
from caretime.outreach.repository import CallRepository, SeriesRepository
from caretime.outreach.schemas import CallIn
from caretime.outreach.screening import duplicate_reason
from caretime.outreach.series import ACTIVE, CANCELLED, SeriesSpec, Started
from caretime.policy import Rejected
from caretime.tenancy.policy import CallingPolicy

log = logging.getLogger("caretime.outreach")
# Occurrences GET /calls/series/{id} shows (the latest); GET /calls?series_id= has them all.
SHOWN_OCCURRENCES = 100


def spec_of(body: CallIn, rule: str) -> SeriesSpec:
    delay = body.retry_delay
    return SeriesSpec(
        body.name, body.phone, body.scheduled, body.tz, body.content(), rule,
        body.allow_duplicate, body.max_attempts,
        None if delay is None else int(delay.total_seconds()),
    )  # fmt: skip


async def create_recurring_call(
    session: AsyncSession, tenant_id: str, calling: CallingPolicy, body: CallIn, *, now: datetime
) -> Started:
    """`POST /calls` with `recurrence`: refused like a single call (opted out, live
    duplicate, bad script); else a series whose first occurrence is planned now or waits."""
    assert body.recurrence is not None
    _, item = await screened(session, tenant_id, calling, body)
    started = await series_service.start_series(
        session, tenant_id, calling, spec_of(body, body.recurrence), now=now
    )
    if isinstance(started, Rejected) and started.code == "already_scheduled":
        await refuse_unwanted(session, tenant_id, item)  # names the live call if it is known
        raise DuplicateCall(duplicate_reason(None, item.purpose))
    if isinstance(started, Rejected):
        raise NotSchedulable(started.error, reason=started.code)
    log_event(log, "call_series_started", series_id=started.series.id)
    return started


async def continue_series(
    session: AsyncSession, tenant_id: str, series_id: str, *, now: datetime
) -> None:
    """The timer's work: plan the next occurrence unless the series ended or its current
    occurrence is still live (a wake-up can come twice, or early: it re-reads and decides)."""
    series = await SeriesRepository(session, tenant_id).get_for_update(series_id)
    if series is None or series.status != ACTIVE:
        return
    if await _live_occurrence(session, series) is not None:
        return
    series.current_call_id = None
    calling = await calling_policy(session, tenant_id)
    advanced = await series_service.advance(session, series, calling, now=now)
    if advanced.kind == "duplicate":
        why = "the number had another live call for the purpose"
        await series_service.skip_current(session, series, why, now=now)
    log_event(log, "call_series_advanced", series_id=series.id, result=advanced.kind)


async def _live_occurrence(session: AsyncSession, series: CallSeries) -> Call | None:
    if series.current_call_id is None:
        return None
    call = await CallRepository(session, series.tenant_id).get(series.current_call_id)
    return call if call is not None and call.status in LIVE else None


async def cancel_series(
    session: AsyncSession, tenant_id: str, series_id: str, *, now: datetime
) -> CallSeries:
    """Stop the series and cancel its pending occurrence. An occurrence already ringing goes
    on to its end (nothing follows it). Cancelling again, or a finished series, is a no-op."""
    series = await SeriesRepository(session, tenant_id).get_for_update(series_id)
    if series is None:
        raise SeriesNotFound(f"no call series {series_id!r}")
    if series.status != ACTIVE:
        return series
    if series.current_call_id is not None:
        # cancel_call locks the call and cancels it only while pending; one that started
        # (even a moment ago, by the dispatcher) rings to its end and nothing follows it.
        with contextlib.suppress(CallAlreadyStarted, CallNotFound):
            await cancel_call(session, tenant_id, series.current_call_id, now=now)
    series.status, series.ended_reason = CANCELLED, "cancelled"
    series.next_local = series.next_at = None
    series.updated_at = now
    await session.flush()
    await series_service.emit_change(session, series, "call_series.cancelled", now=now)
    return series


async def get_series(
    session: AsyncSession, tenant_id: str, series_id: str
) -> tuple[CallSeries, Sequence[Call]]:
    """The series and its latest occurrences, oldest first."""
    repository = SeriesRepository(session, tenant_id)
    series = await repository.get(series_id)
    if series is None:
        raise SeriesNotFound(f"no call series {series_id!r}")
    return series, await repository.occurrences(series_id, limit=SHOWN_OCCURRENCES)


async def list_series(
    session: AsyncSession, tenant_id: str, *, status: str | None, limit: int, cursor: str | None
) -> tuple[Sequence[CallSeries], str | None]:
    repository = SeriesRepository(session, tenant_id)
    statement = repository.select()
    if status is not None:
        statement = statement.where(CallSeries.status == status)
    return await repository.page(statement, limit=limit, after=cursor)
