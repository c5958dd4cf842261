"""`messaging.send_batch`: hand a chunk of queued messages to their providers in one job.

The job re-reads the chunk's messages that are still `queued` (locked on PostgreSQL, so two
runs of one job cannot both send) as plain `MessageRow`s, not ORM objects, re-checks consent
for all of them in one query, takes each message's slot from its provider's rate limiter and
hands the batch over: in one call when the provider accepts batches (the simulator),
otherwise concurrently with at most `MAX_IN_FLIGHT` requests open. Outcomes are recorded
together (event rows, statuses, provider ids, poll jobs) and committed with the job's
completion, so a message handed over is never `queued` again once the job is done. Each
message's failure is its own: a permanent error fails that message, a transient one puts it
in a retry batch with backoff, and messages whose rate-limit slot is more than a moment away
go to a batch due at that slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.db import locking
from caretime.dispatch import JobContext, job_handler
from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.messaging.consent import needs_consent, opted_out_numbers
from caretime.messaging.models import Message, MessageRow, TrackedMessage
from caretime.messaging.outbound import SEND_BATCH_JOB, SEND_BATCH_SIZE, send_jobs
from caretime.messaging.providers import Providers, providers_of
from caretime.messaging.providers.base import (
    BatchSender,
    OutboundRequest,
    Provider,
    ProviderError,
    SendOutcome,
    SendReceipt,
    StatusReport,
    TransientProviderError,
)
from caretime.messaging.statuses import FAILED, QUEUED, SUPPRESSED, is_final
from caretime.messaging.tasks import (
    MAX_INLINE_WAIT,
    POLL_JOB,
    poll_request_for,
    request_for,
    retry_delay,
    sender_for,
    tenant_endpoint,
)
from caretime.messaging.tracking import (
    StatusEvent,
    record_events,
    store_columns,
    store_in_memory,
)
from caretime.observability import log_event

log = logging.getLogger(__name__)

POLL_BATCH_JOB = "messaging.poll_batch"
# HTTP requests one batch job keeps open at once (the rate limiter still paces them).
MAX_IN_FLIGHT = 8
# A message that keeps failing transiently is failed on this attempt, as a single send job is.
MAX_ATTEMPTS = 5


@dataclass
class _Handover:
    """What happened to the chunk: outcomes per message and what is left for later."""

    sent: list[tuple[MessageRow, Provider, SendOutcome]]
    later: dict[datetime, list[str]]
    # The number each provider sent from (the tenant's own, or the provider's shared one).
    senders: dict[str, str | None] = field(default_factory=dict)


@job_handler(SEND_BATCH_JOB)
async def send_batch(ctx: JobContext, payload: dict[str, Any]) -> None:
    assert ctx.job.tenant_id is not None
    attempt = int(payload.get("attempt", 1))
    messages = await _still_queued(ctx.session, ctx.job.tenant_id, payload["message_ids"])
    now = ctx.now()
    messages = await _suppress_opted_out(ctx.session, messages, now)
    handover = _Handover(sent=[], later={})
    providers = providers_of(ctx.runtime)
    for provider, group in _by_provider(providers, messages):
        await _hand_over(ctx, providers, provider, group, handover)
    await _record(ctx, handover, attempt, now)


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


async def _suppress_opted_out(
    session: AsyncSession, messages: list[MessageRow], now: datetime
) -> list[MessageRow]:
    if not messages:
        return messages
    opted_out = await opted_out_numbers(
        session,
        messages[0].tenant_id,
        {(m.to_phone, m.channel) for m in messages if needs_consent(m.related_kind)},
    )
    stopped = [m for m in messages if (m.to_phone, m.channel) in opted_out]
    for message in stopped:
        message.suppression_reason = f"{message.channel} opted out by the recipient"
    await record_events(
        session,
        [StatusEvent(m, "consent", SUPPRESSED, None, {"reason": "opted out"}) for m in stopped],
        now=now,
        with_columns=("suppression_reason",),
    )
    return [m for m in messages if (m.to_phone, m.channel) not in opted_out]


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
    provider: Provider,
    messages: list[MessageRow],
    handover: _Handover,
) -> None:
    """Send what the rate limiter allows now; the rest waits for its slot in a later batch."""
    bucket = providers.bucket(provider.name)
    now = ctx.now()
    slots: list[float] = []
    for index in range(len(messages)):
        wait = bucket.reserve()
        if wait > MAX_INLINE_WAIT:
            later = now + timedelta(seconds=wait)
            handover.later.setdefault(later, []).extend(m.id for m in messages[index:])
            messages = messages[:index]
            break
        slots.append(wait)
    if not messages:
        return
    sender = await sender_for(ctx.session, ctx.job.tenant_id or "", provider)
    endpoint = await tenant_endpoint(ctx.session, provider, ctx.job.tenant_id or "")
    requests = [request_for(message, sender, now, endpoint) for message in messages]
    if isinstance(provider, BatchSender):
        await asyncio.sleep(max(slots))
        outcomes = await provider.send_batch(requests)
    else:
        outcomes = await _send_concurrently(provider, requests, slots)
    handover.sent.extend(
        (message, provider, outcome) for message, outcome in zip(messages, outcomes, strict=True)
    )
    handover.senders[provider.name] = sender


async def _send_concurrently(
    provider: Provider, requests: list[OutboundRequest], slots: list[float]
) -> list[SendOutcome]:
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(request: OutboundRequest, wait: float) -> SendOutcome:
        await asyncio.sleep(wait)
        async with in_flight:
            try:
                return await provider.send(request)
            except ProviderError as exc:
                return exc
            except Exception as exc:
                log_event(
                    log,
                    "send_unexpected_error",
                    message_id=request.message_id,
                    error=type(exc).__name__,
                )
                return TransientProviderError(f"unexpected {type(exc).__name__}")

    return list(await asyncio.gather(*(one(r, w) for r, w in zip(requests, slots, strict=True))))


async def _record(ctx: JobContext, handover: _Handover, attempt: int, now: datetime) -> None:
    tenant_id = ctx.job.tenant_id or ""
    events: list[StatusEvent] = []
    accepted: list[tuple[MessageRow, SendReceipt]] = []
    retry: list[str] = []
    retry_at = now + retry_delay(attempt)
    for message, provider, outcome in handover.sent:
        if isinstance(outcome, SendReceipt):
            sender = handover.senders.get(provider.name)
            store_in_memory(message, _handed_over(provider, sender, outcome, now))
            report = outcome.report
            accepted.append((message, outcome))
            if report.status is not None:
                events.append(
                    StatusEvent(
                        message, provider.name, report.status, report.provider_status, report.raw
                    )
                )
        elif isinstance(outcome, TransientProviderError) and attempt < MAX_ATTEMPTS:
            retry.append(message.id)
            if outcome.retry_after is not None:
                retry_at = max(retry_at, now + outcome.retry_after)
        else:
            reason = outcome.reason
            if isinstance(outcome, TransientProviderError):
                reason = f"gave up after {attempt} attempts: {reason}"
            events.append(
                StatusEvent(message, provider.name, FAILED, None, {"error": reason}, error=reason)
            )
    # The rows are locked (see _still_queued): the hand-over and the statuses are one UPDATE.
    await record_events(ctx.session, events, now=now, with_columns=HANDED_OVER)
    silent = [message for message, receipt in accepted if receipt.report.status is None]
    await store_columns(ctx.session, silent, HANDED_OVER)
    jobs = poll_jobs(
        tenant_id,
        [
            (message, receipt.report.poll_at)
            for message, receipt in accepted
            if receipt.report.poll_at is not None
        ],
    )
    if retry:
        jobs.extend(send_jobs(tenant_id, retry, run_at=retry_at, attempt=attempt + 1))
    for run_at, ids in handover.later.items():
        jobs.extend(send_jobs(tenant_id, ids, run_at=run_at, attempt=attempt))
    await enqueue_many(ctx.session, jobs)
    log_event(
        log,
        "send_batch_done",
        job_id=ctx.job.id,
        sent=len(accepted),
        retrying=len(retry),
        later=sum(len(ids) for ids in handover.later.values()),
    )


HANDED_OVER = ("provider", "provider_id", "from_phone", "sent_at")


def _handed_over(
    provider: Provider, sender: str | None, receipt: SendReceipt, now: datetime
) -> dict[str, Any]:
    values = (provider.name, receipt.provider_id, sender, now)
    return dict(zip(HANDED_OVER, values, strict=True))


def poll_jobs(tenant_id: str, due: Sequence[tuple[TrackedMessage, datetime]]) -> list[NewJob]:
    """Follow-ups of messages that are not over yet: messages due at the same moment (a batch
    sent together) share `messaging.poll_batch` jobs; a message due alone gets `messaging.poll`."""
    by_time: dict[datetime, list[str]] = defaultdict(list)
    for message, at in due:
        if not is_final(message.channel, message.status):
            by_time[at].append(message.id)
    jobs: list[NewJob] = []
    for at, ids in by_time.items():
        if len(ids) == 1:
            jobs.append(NewJob(POLL_JOB, {"message_id": ids[0]}, at, tenant_id))
            continue
        for start in range(0, len(ids), SEND_BATCH_SIZE):
            chunk = {"message_ids": ids[start : start + SEND_BATCH_SIZE]}
            jobs.append(NewJob(POLL_BATCH_JOB, chunk, at, tenant_id))
    return jobs


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
