"""Hand-over in committed steps, for providers reached over the network (Twilio, call API).

A provider call cannot be rolled back, so what it did must be durable as soon as it is known.
Before a request leaves, its message is marked in flight (`handover_started_at` committed);
once the provider answers, the outcome (provider id and status, or the failure) is committed.
Both travel in small steps: each is one short transaction under the job's lease
(`JobContext.step`) carrying every mark and outcome gathered while the previous one was
being written, and a request's slot among the `MAX_IN_FLIGHT` is held until its outcome is
committed. A crash, a lost lease or a refused commit therefore leaves at most the messages in
flight at that moment with a mark and no provider id. The next run finds them **in doubt**
and, by the tenant's policy `messaging.in_doubt`, sends them again (`resend`, the default:
at least once, maybe twice) or holds them as `unknown` (`hold`: at most once). A message
whose provider id was committed is never sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.dispatch import JobContext
from caretime.events import emit_many
from caretime.messaging.models import Message, MessageRow
from caretime.messaging.outcomes import Retry, Sent, record_outcomes, suppress_opted_out
from caretime.messaging.providers import Providers, providers_of
from caretime.messaging.providers.base import (
    OutboundRequest,
    Provider,
    ProviderError,
    SendOutcome,
    TenantEndpoint,
    TooLate,
    TransientProviderError,
)
from caretime.messaging.requests import (
    MAX_INLINE_WAIT,
    request_for,
    sender_for,
    tenant_endpoint,
)
from caretime.messaging.statuses import QUEUED, UNKNOWN, not_sent_status
from caretime.messaging.tracking import StatusEvent, record_events, store_columns, store_in_memory
from caretime.observability import log_event
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import MessagingPolicy

log = logging.getLogger(__name__)

# HTTP requests one job keeps open at once (the rate limiter still paces them).
MAX_IN_FLIGHT = 8
# Messages one job keeps marked in flight without a committed outcome: the most it can leave
# in doubt if its process dies (requests open, answers not yet committed, marked next).
# Under the `hold` policy, MAX_IN_FLIGHT: only messages about to be sent are marked.
MAX_IN_DOUBT = 2 * MAX_IN_FLIGHT
HELD_REASON = "in flight when its worker stopped; not sent again (policy messaging.in_doubt)"


@dataclass
class HandoverResult:
    """What the caller still has to arrange: retries after transient errors, and messages
    whose rate-limit slot is more than a moment away (by due time)."""

    retry: Retry
    later: dict[datetime, list[str]] = field(default_factory=dict)


async def hand_over_in_steps(
    ctx: JobContext, message_ids: Sequence[str], *, attempt: int, last: bool, paced: bool = False
) -> HandoverResult:
    """Send the still-queued messages among `message_ids`, committing as described above.
    `last`: a transient error fails the message instead of leaving it to retry. `paced`:
    the rate-limit slot was reserved already (a deferred send)."""
    async with ctx.step() as session:
        hand_over = await prepare_hand_over(
            ctx, session, message_ids, attempt=attempt, last=last, paced=paced
        )
    return await hand_over.run()


async def prepare_hand_over(
    ctx: JobContext,
    session: AsyncSession,
    message_ids: Sequence[str],
    *,
    attempt: int,
    last: bool,
    paced: bool = False,
    in_flight: int = MAX_IN_FLIGHT,
) -> HandOver:
    """The first step of `hand_over_in_steps`, in the caller's transaction under the job's
    lease (a `ctx.step()`): read what sending needs and mark the first messages in flight.
    `in_flight`: requests open at once under `resend` (twice that are marked ahead; `hold`
    keeps the default). Once
    that transaction commits, `run()` sends them at once (and the rest in steps): a job that
    has just written the messages (outreach's minute job) saves two commits between a
    message's due moment and its request."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    providers = providers_of(ctx.runtime)
    policy = await in_doubt_policy(session, tenant_id)
    messages = await _to_send(session, tenant_id, message_ids, policy, ctx.now())
    groups = _by_provider(providers, messages)
    senders = {p.name: await sender_for(session, tenant_id, p) for p, _ in groups}
    endpoints = {p.name: await tenant_endpoint(session, p, tenant_id) for p, _ in groups}
    # Resend: mark ahead, for throughput; hold: mark only for an idle sender, so that a
    # message held after a crash was almost surely sent (it is never sent again), and no
    # more than the default at once (each one a crash leaves open is never tried again).
    if policy != "resend":
        in_flight = min(in_flight, MAX_IN_FLIGHT)
    limit = 2 * in_flight if policy == "resend" else in_flight
    hand_over = HandOver(
        ctx,
        attempt=attempt,
        last=last,
        limit=limit,
        senders=senders,
        endpoints=endpoints,
        in_flight=in_flight,
    )
    start = asyncio.get_running_loop().time()
    for provider, batch in groups:
        waits = _slots(providers, provider, batch, paced, hand_over.result, ctx.now())
        hand_over.add((provider, m, start + wait) for m, wait in zip(batch, waits, strict=False))
    await hand_over.mark_first(session)
    return hand_over


async def _to_send(
    session: AsyncSession, tenant_id: str, message_ids: Sequence[str], policy: str, now: datetime
) -> list[MessageRow]:
    """The messages still queued, opted-out ones suppressed, those past their sender's
    deadline not sent (`_too_late`), and those left in doubt by an
    earlier run either kept (resend: their next mark flags them) or held as `unknown`."""
    statement = select(Message.__table__).where(
        Message.tenant_id == tenant_id, Message.status == QUEUED, Message.provider_id.is_(None)
    )
    rows = await session.execute(where_one_of(session, statement, Message.id, message_ids))
    messages = await suppress_opted_out(session, [MessageRow(*row) for row in rows], now)
    messages = await _cancel_too_late(session, messages, now)
    in_doubt = [m for m in messages if m.handover_started_at is not None]
    if not in_doubt:
        return messages
    await _announce_in_doubt(session, tenant_id, in_doubt, policy, now)
    if policy == "resend":
        return messages
    await _hold(session, in_doubt, now)
    return [m for m in messages if m.handover_started_at is None]


async def _announce_in_doubt(
    session: AsyncSession, tenant_id: str, messages: list[MessageRow], policy: str, now: datetime
) -> None:
    action = "resent" if policy == "resend" else "held"
    await emit_many(
        session,
        tenant_id=tenant_id,
        type="message.in_doubt",
        subjects=("message", [m.id for m in messages]),
        data=[{"message_id": m.id, "channel": m.channel, "action": action} for m in messages],
        now=now,
    )


async def in_doubt_policy(session: AsyncSession, tenant_id: str) -> str:
    """The tenant's `messaging.in_doubt`; only this section is read, so another section
    that no longer validates cannot stop the sending."""
    tenant = await session.get(Tenant, tenant_id)
    section = ((tenant.policy if tenant else None) or {}).get("messaging", {})
    try:
        return MessagingPolicy.model_validate(section).in_doubt
    except ValidationError:
        return MessagingPolicy().in_doubt


async def _hold(session: AsyncSession, messages: list[MessageRow], now: datetime) -> None:
    for message in messages:
        message.in_doubt = True
    events = [
        StatusEvent(m, "handover", UNKNOWN, None, {"reason": "in doubt"}, error=HELD_REASON)
        for m in messages
    ]
    await record_events(session, events, now=now, with_columns=("in_doubt",))
    log_event(log, "messages_held_in_doubt", count=len(messages))


def _by_provider(
    providers: Providers, messages: list[MessageRow]
) -> list[tuple[Provider, list[MessageRow]]]:
    groups: dict[str, tuple[Provider, list[MessageRow]]] = {}
    for message in messages:
        provider = providers.for_channel(message.channel)
        groups.setdefault(provider.name, (provider, []))[1].append(message)
    return list(groups.values())


def _slots(
    providers: Providers,
    provider: Provider,
    messages: list[MessageRow],
    paced: bool,
    result: HandoverResult,
    now: datetime,
) -> list[float]:
    """Each message's wait for its rate-limit slot; from the first slot more than a moment
    away, the rest go to `result.later` (not sent by this job)."""
    if paced:
        return [0.0] * len(messages)
    bucket, waits = providers.bucket(provider.name), []
    for index in range(len(messages)):
        wait = bucket.reserve()
        if wait > MAX_INLINE_WAIT:
            later = now + timedelta(seconds=wait)
            result.later.setdefault(later, []).extend(m.id for m in messages[index:])
            break
        waits.append(wait)
    return waits


Work = tuple[Provider, MessageRow, float]  # the message, its provider, its slot (loop time)


class HandOver:
    """One writer commits steps; `in_flight` senders send. Each step records the answers
    received since the last one and marks the next messages, as many as keeps the messages
    marked without a committed outcome within `limit`; only marked messages are sent.
    Whatever arrives while a step is written goes in the next (group commit), so a slow
    commit makes steps larger, not the hand-over serial."""

    def __init__(
        self,
        ctx: JobContext,
        *,
        attempt: int,
        last: bool,
        limit: int,
        senders: dict[str, str | None],
        endpoints: dict[str, TenantEndpoint | None],
        in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.ctx = ctx
        self.limit = limit
        self.senders = senders
        # The tenant's own endpoint, per provider reached per tenant (the AI voice agent).
        self.endpoints = endpoints
        self.attempt = attempt
        self.last = last
        self.retry = Retry(ctx.now())
        self.result = HandoverResult(self.retry)
        self._unmarked: deque[Work] = deque()
        self._marked: asyncio.Queue[Work | None] = asyncio.Queue()
        self._answered: list[Sent] = []
        self._open = 0  # marked, outcome not committed yet
        self._news = asyncio.Event()
        self.in_flight = in_flight

    def add(self, work: Iterable[Work]) -> None:
        self._unmarked.extend(work)

    async def mark_first(self, session: AsyncSession) -> None:
        """Mark the first messages in the caller's transaction; they are sent once `run()`
        starts (the caller commits first, or drops this hand-over if its commit fails)."""
        batch = [self._unmarked.popleft() for _ in range(min(self.limit, len(self._unmarked)))]
        self._queue_marked(batch, await _mark(session, [m for _, m, _ in batch], self.ctx.now()))

    async def run(self) -> HandoverResult:
        self._news.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write())
                for _ in range(self.in_flight):
                    group.create_task(self._send_marked())
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # LeaseLost (or a refused step) as itself
        return self.result

    async def _write(self) -> None:
        while self._unmarked or self._open:
            await self._news.wait()
            self._news.clear()
            answered, self._answered = self._answered, []
            room = self.limit - self._open + len(answered)
            batch = [self._unmarked.popleft() for _ in range(min(room, len(self._unmarked)))]
            if answered or batch:
                await self._step(answered, batch)
        for _ in range(self.in_flight):
            self._marked.put_nowait(None)  # the senders stop

    async def _step(self, answered: list[Sent], batch: list[Work]) -> None:
        async with self.ctx.step() as session:
            marked = await _mark(session, [message for _, message, _ in batch], self.ctx.now())
            await self._record(session, answered)
        self._open -= len(answered)
        self._queue_marked(batch, marked)

    def _queue_marked(self, batch: list[Work], marked: set[str]) -> None:
        for work in batch:
            if work[1].id in marked:  # else sent, suppressed or failed meanwhile
                self._open += 1
                self._marked.put_nowait(work)

    async def _send_marked(self) -> None:
        loop = asyncio.get_running_loop()
        while (work := await self._marked.get()) is not None:
            provider, message, slot = work
            await asyncio.sleep(max(0.0, slot - loop.time()))
            sender = self.senders.get(provider.name, provider.from_number)
            endpoint = self.endpoints.get(provider.name)
            now = self.ctx.now()
            outcome = _too_late(message, now) or await _send(
                provider, request_for(message, sender, now, endpoint)
            )
            self._answered.append((message, provider, outcome))
            self._news.set()

    async def _record(self, session: AsyncSession, answered: list[Sent]) -> None:
        if not answered:
            return
        now = self.ctx.now()
        await _current_statuses(session, [message for message, _, _ in answered])
        retry = await record_outcomes(
            session, answered, attempt=self.attempt, last=self.last, now=now, senders=self.senders
        )
        if retry.ids:
            # Refused for now (not sent): queued again with no mark, so not in doubt.
            refused = set(retry.ids)
            cleared = [m for m, _, _ in answered if m.id in refused]
            for message in cleared:
                store_in_memory(message, {"handover_started_at": None})
            await store_columns(session, cleared, ("handover_started_at",))
            self.retry.merge(retry)


async def _current_statuses(session: AsyncSession, messages: list[MessageRow]) -> None:
    """Read, under lock, the statuses these messages have now: a status callback may have
    found a message by our id while its answer travelled, and a receipt must never move
    it back."""
    columns = select(Message.id, Message.status, Message.status_changed_at)
    statement = where_one_of(session, columns, Message.id, [m.id for m in messages])
    # FOR NO KEY UPDATE, as caretime.db.locking takes it (typed there for whole-row selects).
    rows = await session.execute(statement.with_for_update(key_share=True))
    current = {id_: (status, changed) for id_, status, changed in rows}
    for message in messages:
        message.status, message.status_changed_at = current.get(
            message.id, (message.status, message.status_changed_at)
        )


async def _mark(session: AsyncSession, messages: list[MessageRow], now: datetime) -> set[str]:
    """Mark these messages in flight, if still unsent; a message marked before (an earlier
    run died with it in flight) is flagged in doubt. Returns the ids marked."""
    if not messages:
        return set()
    result = await session.execute(
        update(Message)
        .where(
            Message.id.in_([m.id for m in messages]),
            Message.status == QUEUED,
            Message.provider_id.is_(None),
        )
        .values(
            handover_started_at=now,
            in_doubt=or_(Message.in_doubt, Message.handover_started_at.is_not(None)),
        )
        .returning(Message.id)
    )
    return set(result.scalars())


async def _cancel_too_late(
    session: AsyncSession, messages: list[MessageRow], now: datetime
) -> list[MessageRow]:
    """Messages already past their deadline (waiting for a rate-limit slot, or for a worker
    after a crash) end here; returns the others."""
    late = {m.id: reason for m in messages if (reason := _too_late(m, now)) is not None}
    if not late:
        return messages
    events = [
        StatusEvent(m, "handover", not_sent_status(m.channel), None, {"error": str(late[m.id])},
                    error=str(late[m.id]))
        for m in messages if m.id in late
    ]  # fmt: skip
    await record_events(session, events, now=now)
    return [m for m in messages if m.id not in late]


def _too_late(message: MessageRow, now: datetime) -> TooLate | None:
    """A message whose sender allowed it only until a moment now past is not sent: a call
    whose window closed while its request waited (for a sender, its rate-limit slot, or a
    worker after a crash) is not placed outside it."""
    until = (message.context or {}).get("allowed_until")
    if until is None or now < datetime.fromisoformat(until):
        return None
    log_event(log, "message_too_late", message_id=message.id)
    return TooLate(f"not sent: it was allowed only until {until}")


async def _send(provider: Provider, request: OutboundRequest) -> SendOutcome:
    try:
        return await provider.send(request)
    except ProviderError as exc:
        return exc
    except Exception as exc:
        log_event(
            log, "send_unexpected_error", message_id=request.message_id, error=type(exc).__name__
        )
        return TransientProviderError(f"unexpected {type(exc).__name__}")
