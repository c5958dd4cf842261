"""Replies recorded now and acted on in a dispatch job: a provider's webhook (Twilio gives it
15 s before it counts the delivery as failed and retries) answers as soon as the reply is
stored, however many replies are waiting to be routed. The answer to the sender then goes
out as an outbound SMS, as every answer to a provider's reply does anyway.

Recording and queuing commit together, so a stored reply is always acted on (at least once:
the job re-reads the message and does nothing if its route is already stored, and the
reply's own key makes the answer once)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import JobContext, enqueue, job_handler
from caretime.messaging import inbound
from caretime.messaging.models import Message
from caretime.messaging.repository import MessageRepository
from caretime.observability import log_event

log = logging.getLogger("caretime.messaging")
PROCESS_JOB = "messaging.process_inbound"


async def record_for_later(
    session: AsyncSession, tenant_id: str, received: inbound.Inbound, *, now: datetime
) -> Message:
    """Store the reply once and queue its processing; the same reply again queues nothing."""
    message, new = await inbound.record(session, inbound.unrecorded(tenant_id, received, now=now))
    if new:
        await enqueue(
            session,
            PROCESS_JOB,
            {"message_id": message.id},
            run_at=now,
            tenant_id=tenant_id,
            dedupe_key=f"{PROCESS_JOB}:{message.id}",
        )
    return message


@job_handler(PROCESS_JOB)
async def process_inbound(ctx: JobContext, payload: dict[str, Any]) -> None:
    assert ctx.job.tenant_id is not None
    message = await MessageRepository(ctx.session, ctx.job.tenant_id).get(payload["message_id"])
    if message is None or inbound.is_processed(message):
        return
    outcome = await inbound.process(
        ctx.session,
        ctx.job.tenant_id,
        message,
        {},
        now=ctx.now(),
        classifier=inbound.classifier_of(ctx.runtime),
    )
    log_event(log, "inbound_processed", message_id=message.id, action=outcome.action)
