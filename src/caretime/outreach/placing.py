"""The minute job: places a tenant's calls due in one minute, each at its own moment.

Calls due in the same minute share one dispatch job (docs/dispatch.md, "Calls: one job per
due minute"). A run of it:

1. hands over the messages an earlier run of this job queued and did not hand over (it was
   killed, lost its lease, or the provider refused them for now);
2. claims the calls due now, in one committed step under the job's lease: locked and re-read,
   so only calls still `scheduled` in this minute (a cancelled or moved call is not there,
   and a call claimed by another transaction is no longer scheduled), each re-checked
   against its windows and caps, its attempt and voice message written;
3. hands their messages to the provider in committed steps (`prepare_hand_over` marks the
   first ones in flight in the claim's own transaction, so their requests leave as soon as
   it commits), up to `ROUNDS_IN_FLIGHT` claims' worth at once, while it goes on claiming as
   calls fall due (a claim waits while that many are being handed over). On
   the real clock it waits in process for a call due within `INLINE_WAIT`; otherwise the run
   ends and the job comes back at the next call's time;
4. ends under the minute's lock (see `writing.make_dispatchable`): queued again for the
   earliest call still scheduled in the minute or message refused for now, else done.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from caretime.clock import SystemClock
from caretime.db import serialise_on
from caretime.dispatch import JobContext
from caretime.dispatch.wakeup import Waker
from caretime.messaging import HandOver, HandoverResult, hand_over_in_steps, prepare_hand_over
from caretime.observability import log_event
from caretime.outreach import execution
from caretime.outreach.repository import CallRepository
from caretime.outreach.starting import start_due
from caretime.outreach.writing import minute_lock

log = logging.getLogger("caretime.outreach")

# Calls claimed by one step at most (a step is one short transaction).
CLAIM_LIMIT = 200
# Claims whose messages are being handed over at once.
ROUNDS_IN_FLIGHT = 8
# Requests one claim's hand-over keeps open at once. The planner gives calls whole seconds:
# at 1,000 calls a minute, 17 fall due together, and their requests leave together rather
# than in waves of messaging's default 8 (each wave a loopback round trip, 70 ms under load).
REQUESTS_IN_FLIGHT = 32
# A run waits in process for a call due this soon; a later one brings the job back instead.
INLINE_WAIT = timedelta(seconds=5)
# A message the provider keeps refusing for now fails on the first try after this long
# (its call then follows the call's own retry rules).
GIVE_UP_AFTER = timedelta(minutes=10)


@dataclass
class _Run:
    ctx: JobContext
    tenant_id: str
    minute: int
    started: datetime
    # The earliest moment a message refused for now may be tried again.
    retry_at: datetime | None = None

    def note(self, result: HandoverResult) -> None:
        later = [*result.later, *([result.retry.at] if result.retry.ids else [])]
        if later:
            self.retry_at = min([*later, *([self.retry_at] if self.retry_at else [])])


async def place_minute(ctx: JobContext, minute: int) -> None:
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    run = _Run(ctx, tenant_id, minute, ctx.now())
    rounds = asyncio.Semaphore(ROUNDS_IN_FLIGHT)
    try:
        async with asyncio.TaskGroup() as handing:
            for ids, last in await _left_over(run):
                handing.create_task(_hand_over_later(run, rounds, ids, last=last))
            while True:
                await rounds.acquire()  # released when this claim's hand-over ends
                hand_over, next_at = await _claim_due(run)
                if hand_over is None:
                    rounds.release()
                else:
                    handing.create_task(_run_hand_over(run, rounds, hand_over))
                if not await _wait_for(ctx, next_at):
                    break
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # LeaseLost (or a refused step) as itself
    await _finish(run)


async def _left_over(run: _Run) -> list[tuple[list[str], bool]]:
    """Messages of this minute's started calls queued before this run and not handed over:
    those too old to keep trying go on their last try."""
    async with run.ctx.step() as session:
        found = await CallRepository(session, run.tenant_id).unsent_messages(
            run.minute, before=run.started
        )
    if found:
        log_event(log, "minute_resumed", job_id=run.ctx.job.id, messages=len(found))
    old = run.started - GIVE_UP_AFTER
    fresh = [id_ for id_, created in found if created > old]
    stale = [id_ for id_, created in found if created <= old]
    return [(ids, last) for ids, last in ((fresh, False), (stale, True)) if ids]


async def _claim_due(run: _Run) -> tuple[HandOver | None, datetime | None]:
    """Start the calls due now and prepare their hand-over in the same transaction (their
    first requests leave as soon as it commits); returns it and when the next call is due."""
    now = run.ctx.now()
    async with run.ctx.step() as session:
        calls = CallRepository(session, run.tenant_id)
        due = await calls.due_in_minute(run.minute, now, limit=CLAIM_LIMIT)
        ids: list[str] = []
        if due:
            calling = await execution.calling_policy(session, run.tenant_id)
            ids = await start_due(session, run.tenant_id, due, calling, now=now)
        hand_over = None
        if ids:
            hand_over = await prepare_hand_over(
                run.ctx, session, ids, attempt=1, last=False, in_flight=REQUESTS_IN_FLIGHT
            )
        next_at = now if len(due) == CLAIM_LIMIT else await calls.next_due_in_minute(run.minute)
    return hand_over, next_at


async def _run_hand_over(run: _Run, rounds: asyncio.Semaphore, hand_over: HandOver) -> None:
    try:
        run.note(await hand_over.run())
    finally:
        rounds.release()


async def _hand_over_later(
    run: _Run, rounds: asyncio.Semaphore, message_ids: list[str], *, last: bool
) -> None:
    async with rounds:
        run.note(await hand_over_in_steps(run.ctx, message_ids, attempt=1, last=last))


async def _wait_for(ctx: JobContext, next_at: datetime | None) -> bool:
    """Wait for the next call if it is due soon and the clock is real; False: end the run
    (nothing left, or the job comes back at that call's time)."""
    if next_at is None:
        return False
    wait = (next_at - ctx.now()).total_seconds()
    if wait <= 0:
        return True
    if not isinstance(ctx.runtime.clock, SystemClock) or wait > INLINE_WAIT.total_seconds():
        return False
    await _sleep_or_wake(ctx.runtime.waker, wait)
    return True


async def _sleep_or_wake(waker: Waker, seconds: float) -> None:
    """Sleep, or less when work is enqueued (a call moved into this minute, sooner)."""
    signal = waker.subscribe()
    try:
        await asyncio.wait_for(signal.wait(), timeout=seconds)
    except TimeoutError:
        pass
    finally:
        waker.unsubscribe(signal)


async def _finish(run: _Run) -> None:
    """Under the minute's lock, in the transaction that completes the job: a call written
    into this minute meanwhile is either seen here (the job comes back for it) or written
    after the job is done (its writer then enqueues a new one)."""
    session = run.ctx.session
    await serialise_on(session, minute_lock(run.tenant_id, run.minute))
    remaining = await CallRepository(session, run.tenant_id).next_due_in_minute(run.minute)
    again = [at for at in (remaining, run.retry_at) if at is not None]
    if again:
        run.ctx.run_again_at(max(min(again), run.ctx.now()))
