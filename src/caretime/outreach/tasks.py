"""Outreach's registrations: the dispatch job that places the calls due in one minute, and
the messaging listener for attempt outcomes. Both re-read state and do nothing if it moved
on."""

from __future__ import annotations

from typing import Any

from caretime.dispatch import JobContext, job_handler
from caretime.messaging import on_status_change
from caretime.outreach import execution, series_actions
from caretime.outreach.models import Call, CallSeries
from caretime.outreach.placing import place_minute
from caretime.outreach.series_jobs import SERIES_NEXT
from caretime.outreach.writing import PLACE_CALL, PLACE_MINUTE, make_dispatchable
from caretime.retention import Prunable, register


@job_handler(PLACE_MINUTE)
async def place_calls_due_in_minute(ctx: JobContext, payload: dict[str, Any]) -> None:
    await place_minute(ctx, int(payload["minute"]))


@job_handler(PLACE_CALL)
async def place_call(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A per-call job queued before calls shared one job per minute: its call, if still
    waiting for it, goes to its minute's job."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    call = await execution.due_call(ctx.session, tenant_id, payload["call_id"], payload["version"])
    if call is not None:
        await make_dispatchable(ctx.session, tenant_id, [call.scheduled_at])


@job_handler(SERIES_NEXT)
async def series_next(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A series' occurrence ended, or the one it waits for came inside the horizon."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    await series_actions.continue_series(
        ctx.session, tenant_id, payload["series_id"], now=ctx.now()
    )


on_status_change(execution.ATTEMPT_KIND)(execution.on_attempt_status)
# Cancelled and expired calls (with their attempts) go when the tenant's policy says so.
register(Prunable("ended_calls", Call, Call.id, Call.updated_at, lambda p: p.ended_calls,
                  Call.status.in_(("cancelled", "expired"))))  # fmt: skip
# Ended series go after the same time: none of them plans a call again.
ENDED_SERIES = CallSeries.status.in_(("finished", "cancelled"))
register(Prunable("ended_series", CallSeries, CallSeries.id, CallSeries.updated_at,
                  lambda p: p.ended_calls, ENDED_SERIES))  # fmt: skip
