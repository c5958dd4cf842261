"""`messaging.send_batch`: hand a chunk of queued messages to their providers in one job.

Two paths. When every provider is in the database (the simulator), the job re-reads the
chunk's still-queued messages locked (two runs of one job cannot both send), re-checks
consent in one query, takes each message's rate-limit slot, hands the batch over in one call
and records every outcome with bulk statements committed with the job's completion: a
rolled-back job sent nothing. With a provider over the network (Twilio, call API), the
messages go out in committed steps (`messaging/handover.py`), so a crash can leave at most
the requests in flight in doubt and never re-sends a message whose provider id was
committed. Either way each message's failure is its own: a permanent error fails that
message, a transient one puts it in a retry batch with backoff, and messages whose slot is
more than a moment away go to a batch due at that slot. `messaging.poll_batch` polls
messages sent together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.db import locking
from caretime.dispatch import JobContext, job_handler
from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.messaging.handover import MAX_IN_FLIGHT, HandoverResult, hand_over_in_steps
from caretime.messaging.models import Message, MessageRow
from caretime.messaging.outbound import SEND_BATCH_JOB, send_jobs
from caretime.messaging.outcomes import (
    POLL_BATCH_JOB,
    Sent,
    poll_jobs,
    record_outcomes,
    suppress_opted_out,
)
from caretime.messaging.providers import Providers, providers_of
from caretime.messaging.providers.base import (
    BatchSender,
    OutboundRequest,
    Provider,
    ProviderError,
    SendOutcome,
    StatusReport,
    TransientProviderError,
)
from caretime.messaging.requests import (
    MAX_INLINE_WAIT,
    POLL_JOB,
    poll_request_for,
    request_for,
    retry_delay,
    sender_for,
    tenant_endpoint,
)
from caretime.messaging.statuses import FAILED, QUEUED, is_final
from caretime.messaging.tracking import StatusEvent, record_events
from caretime.observability import log_event

log = logging.getLogger(__name__)

# A message that keeps failing transiently is failed on this attempt, as a single send job is.
MAX_ATTEMPTS = 5
__all__ = ["MAX_ATTEMPTS", "POLL_BATCH_JOB", "poll_batch", "send_batch"]


@job_handler(SEND_BATCH_JOB)
async def send_batch(ctx: JobContext, payload: dict[str, Any]) -> None:
    assert ctx.job.tenant_id is not None
    attempt = int(payload.get("attempt", 1))
    ids, last = payload["message_ids"], attempt >= MAX_ATTEMPTS
    providers = providers_of(ctx.runtime)
    if providers.all_in_database():
        handover = await _hand_over_in_transaction(ctx, providers, ids, attempt=attempt, last=last)
    else:
        handover = await hand_over_in_steps(ctx, ids, attempt=attempt, last=last)
    await _enqueue_follow_ups(ctx, handover, attempt)


async def _hand_over_in_transaction(
    ctx: JobContext, providers: Providers, ids: Sequence[str], *, attempt: int, last: bool
) -> HandoverResult:
    """The simulator's path: its hand-over is this job's own write, so everything (reading,
    sending, recording) happens in the job's transaction, committed with its completion."""
    assert ctx.job.tenant_id is not None
    now = ctx.now()
    messages = await _still_queued(ctx.session, ctx.job.tenant_id, ids)
    messages = await suppress_opted_out(ctx.session, messages, now)
    later: dict[datetime, list[str]] = {}
    sent: list[Sent] = []
    senders: dict[str, str | None] = {}
    for provider, group in _by_provider(providers, messages):
        senders[provider.name] = await sender_for(ctx.session, ctx.job.tenant_id, provider)
        await _hand_over(ctx, providers, (provider, senders[provider.name]), group, sent, later)
    retry = await record_outcomes(
        ctx.session, sent, attempt=attempt, last=last, now=now, senders=senders
    )
    return HandoverResult(retry, later)


async def _still_queued(
    session: AsyncSession, tenant_id: str, message_ids: Sequence[str]
) -> list[MessageRow]:
    """The chunk's messages not handed over yet, locked, as rows (no ORM objects: a batch
    job writes what it changes with bulk statements)."""
    messages = Message.__table__
    statement = select(messages).where(
        Message.tenant_id == tenant_id,
        Message.status == QUEUED,
        Message.provider_id.is_(None),
    )
    statement = where_one_of(session, statement, Message.id, message_ids)
    result = await session.execute(locking(statement.order_by(Message.id)))
    return [MessageRow(*row) for row in result]


def _by_provider(
    providers: Providers, messages: list[MessageRow]
) -> list[tuple[Provider, list[MessageRow]]]:
    groups: dict[str, tuple[Provider, list[MessageRow]]] = {}
    for message in messages:
        provider = providers.for_channel(message.channel)
        groups.setdefault(provider.name, (provider, []))[1].append(message)
    return list(groups.values())


async def _hand_over(
    ctx: JobContext,
    providers: Providers,
    provider_and_sender: tuple[Provider, str | None],
    messages: list[MessageRow],
    sent: list[Sent],
    later: dict[datetime, list[str]],
) -> None:
    """Send what the rate limiter allows now; the rest waits for its slot in a later batch."""
    provider, sender = provider_and_sender
    bucket = providers.bucket(provider.name)
    now = ctx.now()
    slots: list[float] = []
    for index in range(len(messages)):
        wait = bucket.reserve()
        if wait > MAX_INLINE_WAIT:
            later.setdefault(now + timedelta(seconds=wait), []).extend(
                m.id for m in messages[index:]
            )
            messages = messages[:index]
            break
        slots.append(wait)
    if not messages:
        return
    endpoint = await tenant_endpoint(ctx.session, provider, ctx.job.tenant_id or "")
    requests = [request_for(message, sender, now, endpoint) for message in messages]
    if isinstance(provider, BatchSender):
        await asyncio.sleep(max(slots))
        outcomes = await provider.send_batch(requests)
    else:
        outcomes = [await _send(provider, request) for request in requests]
    sent.extend((m, provider, outcome) for m, outcome in zip(messages, outcomes, strict=True))


async def _send(provider: Provider, request: OutboundRequest) -> SendOutcome:
    try:
        return await provider.send(request)
    except ProviderError as exc:
        return exc


async def _enqueue_follow_ups(ctx: JobContext, handover: HandoverResult, attempt: int) -> None:
    """Transient failures retry together as one smaller batch after the backoff; messages
    whose rate-limit slot is further away go to a batch due at that slot."""
    tenant_id = ctx.job.tenant_id or ""
    retry = handover.retry
    jobs = send_jobs(tenant_id, retry.ids, run_at=retry.at, attempt=attempt + 1)
    for run_at, ids in handover.later.items():
        jobs.extend(send_jobs(tenant_id, ids, run_at=run_at, attempt=attempt))
    if jobs:
        await enqueue_many(ctx.session, jobs)
    log_event(
        log,
        "send_batch_done",
        job_id=ctx.job.id,
        retrying=len(retry.ids),
        later=sum(len(ids) for ids in handover.later.values()),
    )


@job_handler(POLL_BATCH_JOB)
async def poll_batch(ctx: JobContext, payload: dict[str, Any]) -> None:
    """`messaging.poll` for messages sent together: each is polled (the simulator steps its
    timeline), the answers are recorded in bulk and the next follow-ups enqueued together."""
    assert ctx.job.tenant_id is not None
    statement = select(Message).where(
        Message.tenant_id == ctx.job.tenant_id,
        Message.provider.is_not(None),
        Message.provider_id.is_not(None),
        Message.sent_at.is_not(None),
    )
    statement = where_one_of(ctx.session, statement, Message.id, payload["message_ids"])
    result = await ctx.session.scalars(locking(statement.order_by(Message.id), of=Message))
    messages = [m for m in result.all() if not is_final(m.channel, m.status)]
    now = ctx.now()
    providers = providers_of(ctx.runtime)
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(message: Message) -> StatusReport | ProviderError:
        async with in_flight:
            try:
                return await providers.named(message.provider or "").poll(
                    poll_request_for(message, now)
                )
            except ProviderError as exc:
                return exc

    answers = await asyncio.gather(*(one(message) for message in messages))
    events: list[StatusEvent] = []
    due: list[tuple[Message, datetime]] = []
    retries: list[NewJob] = []
    for message, answer in zip(messages, answers, strict=True):
        source = message.provider or ""
        if isinstance(answer, StatusReport):
            if answer.status is not None:
                events.append(
                    StatusEvent(message, source, answer.status, answer.provider_status, answer.raw)
                )
            if answer.poll_at is not None:
                due.append((message, answer.poll_at))
        elif isinstance(answer, TransientProviderError):
            at = now + (answer.retry_after or retry_delay(1))
            retries.append(NewJob(POLL_JOB, {"message_id": message.id}, at, ctx.job.tenant_id))
        else:
            reason = answer.reason
            events.append(StatusEvent(message, source, FAILED, None, {"error": reason}, reason))
    await record_events(ctx.session, events, now=now)
    await enqueue_many(ctx.session, [*poll_jobs(ctx.job.tenant_id, due), *retries])
