"""Replies to POST /messages/inbound processed together (group commit): a burst of replies
(a thousand caregivers answering one offer) costs a transaction per batch, not per reply.

Each process has one desk. A request hands its reply over and waits; while a batch is being
written the next replies gather, and the desk takes up to BATCH_SIZE of them into ONE
transaction, one after the other, exactly as each would run alone (every reply flushes
its writes before the next one reads, so each sees what the ones before it did, as if
they had committed in that order). What a batch saves is what does not depend on order:
BEGIN and COMMIT, the answers' SMS (one consent read, one INSERT, one send job per 200),
the new inbound rows (one INSERT with their routes) and NOTIFY.

Nobody is answered before the batch commits. If anything in a batch fails (a reply that
raises, a deadlock, the commit), the whole batch rolls back and each of its replies runs
again alone in its own transaction, as before the desk: a reply's error reaches only its
own request. A batch ends right after a reply that won a first-yes claim (`db.
note_contended_lock`), so the claimed row's lock is held only for the writes already made;
the replies after it go to the next batch.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState

from caretime.db import holds_contended_lock, run_after_commit, transaction
from caretime.messaging import inbound
from caretime.messaging.intent import Intent, IntentClassifier
from caretime.messaging.models import Message
from caretime.messaging.phones import to_e164
from caretime.messaging.routing import FoundQuestions, routers

log = logging.getLogger("caretime.messaging")
SERVICE = "messaging.reply_desk"
# Replies per transaction: enough to absorb a burst, few enough that a batch is short.
BATCH_SIZE = 64
# At most this many batches are written at the same time, each in its own transaction: a
# second one starts only when more replies wait than the running ones will take next (see
# ReplyDesk._more_batches_needed).
BATCHES = 4


@dataclass
class _Waiting:
    tenant_id: str
    inbound: inbound.Inbound
    # The reply as a message row, built once (checking its number) when it arrives.
    message: Message
    now: datetime
    classifier: IntentClassifier | None
    # The request's context (its actor, tenant and request id for logs and events).
    context: contextvars.Context
    answer: asyncio.Future[dict[str, Any]]


class ReplyDesk:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, batches: int = BATCHES
    ) -> None:
        self._sessions = sessions
        self._waiting: deque[_Waiting] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self._batches = batches

    async def receive(
        self,
        tenant_id: str,
        received: inbound.Inbound,
        *,
        now: datetime,
        classifier: IntentClassifier | None = None,
    ) -> dict[str, Any]:
        """Record and route the reply (as inbound.receive) in the next batch; its response."""
        message = inbound.unrecorded(tenant_id, received, now=now)  # a bad number fails it alone
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        context = contextvars.copy_context()
        waiting = _Waiting(tenant_id, received, message, now, classifier, context, answer)
        self._waiting.append(waiting)
        if self._more_batches_needed():
            worker = asyncio.create_task(self._work())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        return await answer

    def _more_batches_needed(self) -> bool:
        """Another batch starts when none is being written, or when more replies wait than
        the running batches will take next. Replies that gather behind a running batch go
        into one batch, not into as many as there are free workers: a batch costs about ten
        round trips whatever its size, and on a machine whose cores the database shares,
        those round trips, not the wait for them, are what a burst's throughput is made of
        (docs/benchmarks.md, burst)."""
        # A worker that has just found nothing left is done, though still in the set.
        running = sum(not worker.done() for worker in self._workers)
        if running >= self._batches:
            return False
        return running == 0 or len(self._waiting) > running * BATCH_SIZE

    async def _work(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                if batch:
                    await self._run(batch)
        finally:  # cancelled (shut down): nobody may wait for an answer that never comes
            while self._waiting:
                waiting = self._waiting.popleft()
                if not waiting.answer.done():
                    waiting.answer.cancel()

    def _next_batch(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        keys: set[str] = set()
        while self._waiting and len(batch) < BATCH_SIZE:
            waiting = self._waiting[0]
            key = inbound.dedupe_key(waiting.inbound)
            if key is not None and key in keys:
                break  # a twin answers like a repeat once the first has committed
            self._waiting.popleft()
            if waiting.answer.done():
                continue  # its request is gone (the client hung up before it started)
            batch.append(waiting)
            if key is not None:
                keys.add(key)
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        try:
            done = await self._together(batch)
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.answer.cancel()
            raise
        except Exception as exc:
            log.info("reply_batch_retried_alone", extra={"fields": {"error": type(exc).__name__}})
            for waiting in batch:
                await self._alone(waiting)
            return
        # Replies after a won claim wait for the next batch, ahead of later arrivals.
        self._waiting.extendleft(reversed(batch[done:]))

    async def _together(self, batch: list[_Waiting]) -> int:
        """Process the batch's replies in one transaction; how many it took."""
        responses: list[tuple[_Waiting, dict[str, Any]]] = []
        async with self._sessions() as session:
            reads_as_committed(session)
            async with session.begin():
                answers = inbound.Answers(questions=await _questions(session, batch))
                unkeyed: list[Message] = []
                for waiting in batch:
                    response = await asyncio.create_task(
                        _one(session, waiting, answers, unkeyed), context=waiting.context
                    )
                    responses.append((waiting, response))
                    if holds_contended_lock(session):
                        break
                session.add_all(unkeyed)
                await answers.send(session)
            # As a request's own transaction does: its follow-ups run before it answers.
            await run_after_commit(self._sessions, session)
            for waiting, response in responses:
                if not waiting.answer.done():
                    waiting.answer.set_result(response)
        return len(responses)

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            response = await asyncio.create_task(
                self._receive_alone(waiting), context=waiting.context
            )
        except Exception as exc:
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)
            return
        if not waiting.answer.done():
            waiting.answer.set_result(response)

    async def _receive_alone(self, waiting: _Waiting) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            outcome = await inbound.receive(
                session,
                waiting.tenant_id,
                waiting.inbound,
                now=waiting.now,
                classifier=waiting.classifier,
            )
            return outcome.as_response()


async def _one(
    session: AsyncSession,
    waiting: _Waiting,
    answers: inbound.Answers,
    unkeyed: list[Message],
) -> dict[str, Any]:
    """One reply of a batch, its message row the one built on arrival. A reply without a key
    is routed before it is stored: its row is written with its route at the end of the
    batch (nothing reads it meanwhile)."""
    tenant_id, received = waiting.tenant_id, waiting.inbound
    if inbound.dedupe_key(received) is None:
        message, new = waiting.message, True
        unkeyed.append(message)
    else:
        message, new = await inbound.record(session, waiting.message)
    if not new:
        intent = Intent(message.intent or "unknown")
        return inbound.InboundOutcome(message, intent, message.route_action or "").as_response()
    outcome = await inbound.process(
        session,
        tenant_id,
        message,
        received.hint,
        now=waiting.now,
        classifier=waiting.classifier,
        answers=answers,
    )
    return outcome.as_response()


def reads_as_committed(session: AsyncSession) -> None:
    """Make every read of the batch's session see what the replies before it did, as a
    transaction of its own would after they had committed: what they changed is flushed
    before any read (autoflush), and a read refreshes the objects it loads instead of
    handing back the copies an earlier reply loaded (populate_existing). A reply that
    reads nothing (a "yes" to a shift already filled, answered from the numbers' one
    read) writes nothing until the batch's end."""
    sync = session.sync_session
    sync.autoflush = True

    def refresh(state: ORMExecuteState) -> None:
        if state.is_select:
            state.update_execution_options(populate_existing=True)

    event.listen(sync, "do_orm_execute", refresh)


async def _questions(session: AsyncSession, batch: list[_Waiting]) -> FoundQuestions:
    """The open questions of the batch's numbers, one read per router and tenant, for each
    number's first reply without a hint (a later one reads again at its turn)."""
    phones: dict[str, set[str]] = {}
    for waiting in batch:
        if not waiting.inbound.hint:
            phone = to_e164(waiting.inbound.from_phone) or ""
            phones.setdefault(waiting.tenant_id, set()).add(phone)
    found = FoundQuestions()
    for tenant_id, numbers in phones.items():
        questions = await routers.find_questions(session, tenant_id, sorted(numbers))
        if questions is not None:
            found.add(tenant_id, questions)
    return found


def reply_desk(runtime: Any) -> ReplyDesk:
    """The process's desk (one per runtime)."""
    desk: ReplyDesk = runtime.service(SERVICE, lambda: ReplyDesk(runtime.sessions))
    return desk
