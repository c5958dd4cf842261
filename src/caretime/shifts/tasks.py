"""Shift jobs: expire a shift at its start time, run the next escalation round, and release
a changed shift whose assignee did not confirm it in time."""

from __future__ import annotations

import logging
from typing import Any

from caretime.dispatch import JobContext, job_handler
from caretime.observability import log_event
from caretime.shifts import alerts, fanout, held, reconfirm, service, texts

log = logging.getLogger("caretime.shifts")


def _tenant(ctx: JobContext) -> str:
    assert ctx.job.tenant_id is not None, "shift jobs are always enqueued for a tenant"
    return ctx.job.tenant_id


@job_handler(service.EXPIRE)
async def expire(ctx: JobContext, payload: dict[str, Any]) -> None:
    tenant_id, shift_id = _tenant(ctx), payload["shift_id"]
    if await service.expire_shift(ctx.session, tenant_id, shift_id, now=ctx.now()):
        await service.cancel_pending_jobs(ctx.session, tenant_id, shift_id)
        shift = await service.require_shift(ctx.session, tenant_id, shift_id)
        text = texts.expired_alert(shift)
        await alerts.alert(
            ctx.session, shift, "expired_unfilled", text, key="expired", now=ctx.now()
        )
        log_event(log, "shift_expired", shift_id=shift_id)


@job_handler(service.ESCALATE)
async def escalate(ctx: JobContext, payload: dict[str, Any]) -> None:
    shift_id, number = payload["shift_id"], int(payload["round"])
    # Jobs enqueued before re-fills existed carry no generation: theirs was the first.
    generation = int(payload.get("generation", 1))
    sent = await fanout.run_round(
        ctx.session, _tenant(ctx), shift_id, number, generation=generation, now=ctx.now()
    )
    log_event(log, "shift_escalated", shift_id=shift_id, round=number, offers=sent)


@job_handler(reconfirm.RECONFIRM)
async def release_unconfirmed(ctx: JobContext, payload: dict[str, Any]) -> None:
    shift_id = payload["shift_id"]
    if await reconfirm.release_unconfirmed(ctx.session, _tenant(ctx), shift_id, now=ctx.now()):
        log_event(log, "shift_released_unconfirmed", shift_id=shift_id)


@job_handler(service.SEND_HELD)
async def send_held(ctx: JobContext, payload: dict[str, Any]) -> None:
    shift_id, number = payload["shift_id"], int(payload["round"])
    sent = await held.send_held(
        ctx.session,
        _tenant(ctx),
        shift_id,
        number,
        generation=int(payload["generation"]),
        now=ctx.now(),
    )
    log_event(log, "shift_held_offers_sent", shift_id=shift_id, round=number, offers=sent)


@job_handler(service.UNFILLED)
async def check_unfilled(ctx: JobContext, payload: dict[str, Any]) -> None:
    await alerts.check_unfilled(
        ctx.session,
        _tenant(ctx),
        payload["shift_id"],
        generation=int(payload["generation"]),
        reason=payload["reason"],
        now=ctx.now(),
    )
