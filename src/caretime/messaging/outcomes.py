"""Recording what providers answered to a hand-over: provider ids, first statuses, failures
and follow-up polls, written in bulk in the session given (the job's, or one of its steps)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.messaging.consent import needs_consent, opted_out_numbers
from caretime.messaging.models import MessageRow, TrackedMessage
from caretime.messaging.outbound import SEND_BATCH_SIZE
from caretime.messaging.providers.base import (
    Provider,
    SendOutcome,
    SendReceipt,
    TooLate,
    TransientProviderError,
)
from caretime.messaging.requests import POLL_JOB, retry_delay
from caretime.messaging.statuses import FAILED, SUPPRESSED, is_final, not_sent_status
from caretime.messaging.tracking import StatusEvent, record_events, store_columns, store_in_memory

POLL_BATCH_JOB = "messaging.poll_batch"
HANDED_OVER = ("provider", "provider_id", "from_phone", "sent_at")

Sent = tuple[MessageRow, Provider, SendOutcome]


@dataclass
class Retry:
    """Messages a transient error left queued, and the earliest moment to try them again."""

    at: datetime
    ids: list[str] = field(default_factory=list)
    reason: str = ""
    hint: timedelta | None = None  # the largest Retry-After a provider gave

    def add(self, message_id: str, error: TransientProviderError, now: datetime) -> None:
        self.ids.append(message_id)
        self.reason = error.reason
        if error.retry_after is not None:
            self.at = max(self.at, now + error.retry_after)
            self.hint = max(self.hint or error.retry_after, error.retry_after)

    def merge(self, other: Retry) -> None:
        self.ids.extend(other.ids)
        self.reason = other.reason or self.reason
        self.at = max(self.at, other.at)
        if other.hint is not None:
            self.hint = max(self.hint or other.hint, other.hint)


async def record_outcomes(
    session: AsyncSession,
    sent: Sequence[Sent],
    *,
    attempt: int,
    last: bool,
    now: datetime,
    senders: Mapping[str, str | None],
) -> Retry:
    """Receipts become provider ids and statuses (one UPDATE, the rows are the caller's),
    permanent errors (and transient ones on the `last` attempt) fail their message, and the
    polls providers asked for are enqueued. `senders`: the number each provider (by name)
    sent from. Returns what a transient error left to retry."""
    events: list[StatusEvent] = []
    accepted: list[tuple[MessageRow, SendReceipt]] = []
    retry = Retry(now + retry_delay(attempt))
    for message, provider, outcome in sent:
        if isinstance(outcome, SendReceipt):
            sender = senders.get(provider.name, provider.from_number)
            store_in_memory(message, _handed_over(provider, sender, outcome, now))
            accepted.append((message, outcome))
            report = outcome.report
            if report.status is not None:
                events.append(
                    StatusEvent(
                        message, provider.name, report.status, report.provider_status, report.raw
                    )
                )
        elif isinstance(outcome, TransientProviderError) and not last:
            retry.add(message.id, outcome, now)
        else:
            events.append(_failure(message, provider, outcome.reason, attempt, outcome))
    await record_events(session, events, now=now, with_columns=HANDED_OVER)
    silent = [message for message, receipt in accepted if receipt.report.status is None]
    await store_columns(session, silent, HANDED_OVER)
    due = [(m, r.report.poll_at) for m, r in accepted if r.report.poll_at is not None]
    await enqueue_many(session, poll_jobs(accepted[0][0].tenant_id if accepted else "", due))
    return retry


async def suppress_opted_out(
    session: AsyncSession, messages: list[MessageRow], now: datetime
) -> list[MessageRow]:
    """Re-check consent for all of them in one query: opted-out numbers become `suppressed`
    (an opt-out may arrive while a message waits). Returns the others."""
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


def _failure(
    message: MessageRow, provider: Provider, reason: str, attempt: int, outcome: SendOutcome
) -> StatusEvent:
    if isinstance(outcome, TransientProviderError):
        reason = f"gave up after {attempt} attempts: {reason}"
    status = not_sent_status(message.channel) if isinstance(outcome, TooLate) else FAILED
    return StatusEvent(message, provider.name, status, None, {"error": reason}, error=reason)


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
