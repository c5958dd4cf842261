"""Outreach's registrations: the dispatch job that places a call at its time, and the
messaging listener for attempt outcomes. Both re-read state and do nothing if it moved on."""

from __future__ import annotations

import logging
from typing import Any

from caretime.dispatch import JobContext, job_handler
from caretime.messaging import on_status_change
from caretime.observability import log_event
from caretime.outreach import execution, series_actions
from caretime.outreach.events import call_changed
from caretime.outreach.models import Call
from caretime.outreach.series_jobs import SERIES_NEXT
from caretime.outreach.writing import PLACE_CALL
from caretime.retention import Prunable, register

log = logging.getLogger("caretime.outreach")


@job_handler(PLACE_CALL)
async def place_call(ctx: JobContext, payload: dict[str, Any]) -> None:
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    call = await execution.due_call(ctx.session, tenant_id, payload["call_id"], payload["version"])
    if call is None:
        return  # cancelled, moved or already placed
    now = ctx.now()
    calling = await execution.calling_policy(ctx.session, tenant_id)
    if not await execution.may_call_now(ctx.session, call, calling, now=now):
        # Its moment passed while nothing ran (e.g. the system was down), or the contact
        # reached a cap: never call late or too often; find the next allowed moment instead.
        log_event(log, "call_not_allowed_now", call_id=call.id)
        if not await execution.replan(ctx.session, call, calling, after=now, now=now):
            call.status, call.outcome = "expired", "no allowed time left within the horizon"
            await call_changed(ctx.session, call, now=now)
        return
    await execution.start_attempt(ctx.session, call, calling, now=now)


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
