"""Shift jobs: expire a shift at its start time, and run the next escalation round."""

from __future__ import annotations

import logging
from typing import Any

from caretime.dispatch import JobContext, job_handler
from caretime.observability import log_event
from caretime.shifts import fanout, service

log = logging.getLogger("caretime.shifts")


def _tenant(ctx: JobContext) -> str:
    assert ctx.job.tenant_id is not None, "shift jobs are always enqueued for a tenant"
    return ctx.job.tenant_id


@job_handler(service.EXPIRE)
async def expire(ctx: JobContext, payload: dict[str, Any]) -> None:
    tenant_id, shift_id = _tenant(ctx), payload["shift_id"]
    if await service.expire_shift(ctx.session, tenant_id, shift_id, now=ctx.now()):
        await service.cancel_pending_jobs(ctx.session, tenant_id, shift_id)
        log_event(log, "shift_expired", shift_id=shift_id)


@job_handler(service.ESCALATE)
async def escalate(ctx: JobContext, payload: dict[str, Any]) -> None:
    shift_id, number = payload["shift_id"], int(payload["round"])
    sent = await fanout.run_round(ctx.session, _tenant(ctx), shift_id, number, now=ctx.now())
    log_event(log, "shift_escalated", shift_id=shift_id, round=number, offers=sent)
