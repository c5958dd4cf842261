"""The delivery job, one per endpoint: a turn reads what is due, sends it, records each
attempt, and queues itself again for the endpoint's next due delivery.

One live job per endpoint means one turn at a time per endpoint, whichever worker process
runs it: every (event, endpoint) is sent once per attempt. Endpoints never wait on each other
(each has its own job), and a turn holds no database transaction while it waits on HTTP.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import insert_rows, update_rows
from caretime.dispatch import JobContext, job_handler
from caretime.events.emit import emit
from caretime.events.webhooks import backoff, queue
from caretime.events.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from caretime.events.webhooks.outbox import DELIVER
from caretime.events.webhooks.sending import Answer, Target, http_client, send_all
from caretime.observability import log_event

log = logging.getLogger("caretime.webhooks")
BATCH = 200
ONE_SECOND = timedelta(seconds=1)


@job_handler(DELIVER)
async def pump(ctx: JobContext, payload: dict[str, Any]) -> None:
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None, "delivery jobs are always enqueued for a tenant"
    async with ctx.runtime.read_sessions() as reading:
        target = await queue.load_target(reading, tenant_id, payload["endpoint_id"])
        rows = (
            []
            if target is None
            else await queue.due(reading, target, now=ctx.now(), limit=_batch(target))
        )
    if target is None:
        return  # deleted or disabled: its deliveries wait for it to be enabled again
    http = http_client(ctx.runtime, target.id)
    answers = await send_all(http, target, [outgoing for _, outgoing in rows])
    deliveries = [delivery for delivery, _ in rows]
    again = await record(ctx.session, target, deliveries, answers, now=ctx.now())
    if again is not None:
        ctx.run_again_at(again)


def _batch(target: Target) -> int:
    return min(BATCH, target.rate_limit) if target.rate_limit else BATCH


async def record(
    session: AsyncSession,
    target: Target,
    deliveries: list[WebhookDelivery],
    answers: list[Answer],
    *,
    now: datetime,
) -> datetime | None:
    """Write the turn's attempts and outcomes; returns when the next turn is due (or None)."""
    endpoint = await queue.lock_endpoint(session, target.id)
    if endpoint is None:
        return None
    await _write_attempts(session, endpoint, deliveries, answers, now)
    await _write_outcomes(session, deliveries, answers, now)
    if not await _still_healthy(session, endpoint, answers, now):
        return None
    following = await queue.next_due(session, endpoint.id)
    if following is not None and target.rate_limit and len(answers) >= target.rate_limit:
        following = max(following, now + ONE_SECOND)
    return following


async def _write_attempts(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    deliveries: list[WebhookDelivery],
    answers: list[Answer],
    now: datetime,
) -> None:
    await insert_rows(
        session,
        WebhookAttempt,
        {
            "delivery_id": [a.delivery_id for a in answers],
            "number": [d.attempts + 1 for d in deliveries],
            "status_code": [a.status_code for a in answers],
            "latency_ms": [a.latency_ms for a in answers],
            "error": [a.error for a in answers],
        },
        shared={"tenant_id": endpoint.tenant_id, "endpoint_id": endpoint.id, "attempted_at": now},
    )


async def _write_outcomes(
    session: AsyncSession, deliveries: list[WebhookDelivery], answers: list[Answer], now: datetime
) -> None:
    outcomes = [_outcome(d, a, now) for d, a in zip(deliveries, answers, strict=True)]
    await update_rows(
        session,
        WebhookDelivery,
        "id",
        {
            "id": [d.id for d in deliveries],
            "status": [status for status, _ in outcomes],
            "next_attempt_at": [at for _, at in outcomes],
            "attempts": [d.attempts + 1 for d in deliveries],
            "last_status_code": [a.status_code for a in answers],
            "last_error": [a.error for a in answers],
            "finished_at": [None if s == PENDING else now for s, _ in outcomes],
        },
    )


def _outcome(delivery: WebhookDelivery, answer: Answer, now: datetime) -> tuple[str, datetime]:
    if answer.ok:
        return DELIVERED, delivery.next_attempt_at
    at = backoff.next_attempt_at(delivery.attempts + 1, created_at=delivery.created_at, now=now)
    return (FAILED, delivery.next_attempt_at) if at is None else (PENDING, at)


async def _still_healthy(
    session: AsyncSession, endpoint: WebhookEndpoint, answers: list[Answer], now: datetime
) -> bool:
    """Track failure in a row; after 24 h of nothing but failures, disable and say so."""
    if any(a.ok for a in answers):
        endpoint.failing_since = None
    elif answers and endpoint.failing_since is None:
        endpoint.failing_since = now
    if not backoff.should_disable(endpoint.failing_since, now):
        return True
    endpoint.enabled = False
    endpoint.disabled_reason = "every delivery failed for 24 hours"
    endpoint.updated_at = now
    await session.flush()  # disabled before the alert looks for endpoints that want it
    await emit(
        session,
        tenant_id=endpoint.tenant_id,
        type="webhook.endpoint_disabled",
        subject=("webhook_endpoint", endpoint.id),
        data={"id": endpoint.id, "enabled": False, "reason": endpoint.disabled_reason},
        now=now,
    )
    log_event(log, "webhook_endpoint_disabled", endpoint_id=endpoint.id)
    return False
