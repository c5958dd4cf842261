"""The worker: claims due jobs, runs their handlers, records the outcome.

Claims are atomic (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one `UPDATE ... RETURNING` under
SQLite's single writer), so any number of workers can share a database. A handler's work
and its job's completion commit in one transaction, and only if this worker still holds
the lease: a worker that lost its lease cannot double-apply an effect. Handlers that never
touched their session have no work to commit with, so their completions are batched into
one statement per loop turn (the throughput path for jobs whose effects are elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import run_after_commit, transaction
from caretime.dispatch import claims, leases, metrics
from caretime.dispatch.errors import LeaseLost, PermanentFailure, RetryLater
from caretime.dispatch.models import DispatchWorker, Job
from caretime.dispatch.registry import HandlerRegistry, JobContext, JobInfo, Lease, handlers
from caretime.dispatch.retry import DEFAULT_RETRY, RetryPolicy
from caretime.dispatch.wakeup import mark_enqueued
from caretime.events import SYSTEM, acting_as
from caretime.observability import log_event
from caretime.runtime import Runtime

log = logging.getLogger("caretime.dispatch")
MAX_SLEEP = 1.0
# The worker ids alive in this process: a heartbeat row of this machine with our pid and an
# id not in here belongs to a predecessor that died (see leases.expire_dead_local_workers).
_ALIVE_HERE: set[str] = set()


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    def __init__(
        self,
        runtime: Runtime,
        *,
        registry: HandlerRegistry = handlers,
        concurrency: int = 32,
        batch_size: int | None = None,
        lease: timedelta = timedelta(seconds=30),
        heartbeat: timedelta | None = None,
        shutdown_grace: timedelta = timedelta(seconds=10),
        retry: RetryPolicy = DEFAULT_RETRY,
        worker_id: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self.concurrency = concurrency
        self.batch_size = batch_size or concurrency
        self.lease = lease
        self.heartbeat = heartbeat or lease / 6
        self.shutdown_grace = shutdown_grace
        self.retry = retry
        self.worker_id = worker_id or new_worker_id()
        _ALIVE_HERE.add(self.worker_id)
        self._running: dict[asyncio.Task[None], int] = {}
        self._done: list[int] = []
        # Failures the database refused to record (connection errors): job id -> new values,
        # written at the next turn; their leases are extended meanwhile, like running jobs'.
        self._unrecorded: dict[int, dict[str, Any]] = {}
        self._next_run_at: datetime | None = None
        self._claims = (
            claims.ClaimConnection(runtime.engine)
            if runtime.engine.dialect.name == "postgresql"
            else None
        )
        self._started_at = runtime.clock.now()

    # -- running what is due ------------------------------------------------------------

    async def run_pending(self) -> int:
        """Run every job due now, batch after batch, until none is due. Returns how many ran.
        Tests call this after advancing a frozen clock."""
        await self.requeue_expired_leases()
        total = 0
        try:
            while claimed := await self._claim_and_start(self.batch_size):
                await asyncio.gather(*list(self._running))
                total += claimed
        finally:
            await self.close()
        return total

    async def _claim_and_start(self, limit: int) -> int:
        rows = await self.claim(limit)
        for row in rows:
            task = asyncio.create_task(self.run_one(row))
            self._running[task] = row.id
            task.add_done_callback(self._forget_task)
        metrics.JOBS_RUNNING_HERE.set(len(self._running))
        return len(rows)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)

    async def claim(self, limit: int) -> Sequence[Row[Any]]:
        """Record batched completions, then claim up to `limit` due jobs, in run_at order."""
        now = self.runtime.clock.now()
        done, self._done = self._done, []
        request = claims.TurnRequest(self.worker_id, done, limit, now, now + self.lease)
        try:
            if self._claims is not None:
                turn = await self._claims.turn(request)
            else:
                turn = await claims.sqlite_turn(self.runtime.sessions, request)
        except BaseException:
            self._done[:0] = done
            raise
        if turn.completed < len(done):
            log_event(log, "jobs_lease_lost", count=len(done) - turn.completed)
        self._next_run_at = turn.next_run_at
        for row in turn.claimed:
            metrics.JOB_LATENESS.observe(max(0.0, (now - row.run_at).total_seconds()))
        return sorted(turn.claimed, key=lambda row: (row.run_at, row.id))

    async def _complete(self, session: AsyncSession, ids: list[int], now: datetime) -> None:
        completed = await leases.complete(session, self.worker_id, ids, now=now) if ids else 0
        if completed < len(ids):
            log_event(log, "jobs_lease_lost", count=len(ids) - completed)

    # -- one job --------------------------------------------------------------------------

    async def run_one(self, row: Row[Any]) -> None:
        info = JobInfo(
            id=row.id,
            kind=row.kind,
            tenant_id=row.tenant_id,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            run_at=row.run_at,
            created_at=row.created_at,
        )
        context = JobContext(None, self.runtime, info, Lease(self.worker_id, self.lease))
        try:
            try:
                handler = self.registry.get(info.kind)
                with acting_as(SYSTEM):  # a timer or a worker, whoever enqueued the job
                    await handler(context, row.payload)
                await self._commit_or_batch(context)
            finally:
                await _close(context)  # rolls back whatever did not commit
            metrics.JOBS_FINISHED.labels(info.kind, "done").inc()
        except LeaseLost:
            metrics.JOBS_FINISHED.labels(info.kind, "lease_lost").inc()
            log_event(log, "job_lease_lost", job_id=info.id, kind=info.kind)
        except Exception as exc:
            await self._after_failure(info, exc)

    async def _commit_or_batch(self, context: JobContext) -> None:
        """Commit the handler's work with its completion; with no work, batch the completion."""
        session = context.opened_session
        if context.again_at is None and (session is None or not _touched_database(session)):
            self._done.append(context.job.id)
            return
        await self._finish(context.session, context.job.id, context.again_at)
        await context.session.commit()
        await run_after_commit(self.runtime.sessions, context.session)

    async def _finish(self, session: AsyncSession, job_id: int, again_at: datetime | None) -> None:
        now = self.runtime.clock.now()
        if again_at is None:
            finished = await leases.complete(session, self.worker_id, [job_id], now=now)
        else:
            finished = await leases.run_again(session, self.worker_id, job_id, at=again_at, now=now)
            mark_enqueued(session, again_at)
        if finished != 1:
            raise LeaseLost(job_id)

    async def _after_failure(self, info: JobInfo, exc: Exception) -> None:
        now = self.runtime.clock.now()
        run_at = self.next_attempt_at(info, exc, now)
        values: dict[str, Any] = {
            "last_error": f"{type(exc).__name__}: {exc}"[:2000],
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if run_at is None:
            values.update(status="failed", finished_at=now)
            log.warning(
                "job_failed",
                extra={"fields": {"job_id": info.id, "kind": info.kind, "error": _name(exc)}},
            )
        else:
            values.update(status="queued", run_at=run_at)
        metrics.JOBS_FINISHED.labels(info.kind, "retried" if run_at else "failed").inc()
        self._unrecorded[info.id] = values
        await self.record_failures()

    async def record_failures(self) -> None:
        """Write the failures not recorded yet. The database may refuse (too many clients,
        restarting): they stay for the next turn rather than leaving their jobs `running`
        until the lease ends, and nothing raises out of a job's task."""
        if not self._unrecorded:
            return
        pending = dict(self._unrecorded)
        try:
            async with transaction(self.runtime.sessions) as session:
                for job_id, values in pending.items():
                    await session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.lease_owner == self.worker_id)
                        .values(**values)
                    )
        except Exception as exc:
            log_event(log, "job_failure_unrecorded", count=len(pending), error=_name(exc))
            return
        for job_id in pending:
            self._unrecorded.pop(job_id, None)

    def next_attempt_at(self, info: JobInfo, exc: Exception, now: datetime) -> datetime | None:
        """When to try again after `exc`, or None to dead-letter the job."""
        if isinstance(exc, PermanentFailure) or info.attempts >= info.max_attempts:
            return None
        if isinstance(exc, RetryLater) and exc.at is not None:
            return max(exc.at, now)
        if isinstance(exc, RetryLater) and exc.delay is not None:
            return now + exc.delay
        policy = self.registry.retry_policy(info.kind) or self.retry
        return policy.next_run_at(
            attempts=info.attempts,
            max_attempts=info.max_attempts,
            created_at=info.created_at,
            now=now,
        )

    # -- leases and heartbeat -------------------------------------------------------------

    async def requeue_expired_leases(self) -> int:
        """Jobs whose worker died (lease expired) become claimable again."""
        async with transaction(self.runtime.sessions) as session:
            return await leases.recover_expired(session, now=self.runtime.clock.now())

    async def beat(self) -> None:
        """Say this worker is alive, extend the leases it holds, recover dead workers' jobs."""
        now = self.runtime.clock.now()
        held = [*self._running.values(), *self._done, *self._unrecorded]
        async with transaction(self.runtime.sessions) as session:
            await leases.beat(session, self._row(), now=now, forget_after=self.lease * 10)
            await leases.extend(session, self.worker_id, held, until=now + self.lease)
            await leases.expire_dead_local_workers(
                session, hostname=socket.gethostname(), alive_here=_ALIVE_HERE, now=now
            )
            await leases.recover_expired(session, now=now)
        async with self.runtime.sessions() as session:
            counts = await leases.count_by_status(session, metrics.COUNTED_STATUSES)
        for status, count in counts.items():
            metrics.JOBS_BY_STATUS.labels(status).set(count)

    def _row(self) -> DispatchWorker:
        return DispatchWorker(
            id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            started_at=self._started_at,
        )

    async def _keep_beating(self, stop: asyncio.Event) -> None:
        while not await _stopped_within(stop, self.heartbeat.total_seconds()):
            try:
                await self.beat()
            except Exception:
                log.exception("dispatcher_heartbeat_error")

    # -- the loop -------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Claim and run until `stop` is set; then finish or release what is claimed."""
        signal = self.runtime.waker.subscribe()
        beating: asyncio.Task[None] | None = None
        try:
            await self.beat()
            beating = asyncio.create_task(self._keep_beating(stop))
            while not stop.is_set():
                try:
                    await self._step(signal, stop)
                except Exception:
                    log.exception("dispatcher_loop_error")
                    await _stopped_within(stop, MAX_SLEEP)
        finally:
            self.runtime.waker.unsubscribe(signal)
            if beating is not None:
                # Wait for the cancelled heartbeat to roll back: on SQLite it may hold the
                # write lock the shutdown's own transaction needs.
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
            await self._shut_down()

    async def _step(self, signal: asyncio.Event, stop: asyncio.Event) -> None:
        # Cleared before claiming: a wake-up that arrives while we claim keeps us awake.
        signal.clear()
        await self.record_failures()
        wanted = min(self.concurrency - len(self._running), self.batch_size)
        if wanted > 0 and await self._claim_and_start(wanted) == wanted:
            await asyncio.sleep(0)  # more may be due: let the claimed jobs start, claim again
            return
        await self._sleep(signal, stop, at_capacity=wanted <= 0)

    async def _sleep(
        self, signal: asyncio.Event, stop: asyncio.Event, *, at_capacity: bool
    ) -> None:
        """Until the next job is due, a wake-up, a running job ends (to record it) or stop."""
        timeout = MAX_SLEEP if at_capacity else self._seconds_until_next_job()
        if timeout <= 0:
            return
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(signal.wait()),
        ]
        await asyncio.wait([*waits, *self._running], timeout=timeout, return_when="FIRST_COMPLETED")
        for waiter in waits:
            waiter.cancel()

    def _seconds_until_next_job(self) -> float:
        if self._next_run_at is None:
            return MAX_SLEEP
        delta = (self._next_run_at - self.runtime.clock.now()).total_seconds()
        return max(0.0, min(MAX_SLEEP, delta))

    async def close(self) -> None:
        """Return the claim connection (run_pending and run_forever do this themselves)."""
        if self._claims is not None:
            await self._claims.close()

    async def _shut_down(self) -> None:
        """Give running handlers the grace period, then cancel the rest and hand their jobs
        back; record what finished; remove this worker's heartbeat row."""
        unfinished: list[int] = []
        if self._running:
            _, pending = await asyncio.wait(
                list(self._running), timeout=self.shutdown_grace.total_seconds()
            )
            unfinished = [self._running[task] for task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.close()
        await self.record_failures()
        now = self.runtime.clock.now()
        done, self._done = self._done, []
        async with transaction(self.runtime.sessions) as session:
            await self._complete(session, done, now)
            released = await leases.release(session, self.worker_id, unfinished, now=now)
            await leases.forget_worker(session, self.worker_id)
        _ALIVE_HERE.discard(self.worker_id)
        if unfinished:
            log_event(log, "jobs_released", count=released)


async def _close(context: JobContext) -> None:
    if context.opened_session is None:
        return
    try:
        await context.opened_session.close()
    except Exception as exc:
        # A connection that broke mid-job cannot be closed cleanly; the pool discards it,
        # and the job's own outcome (not this) is what gets recorded.
        log_event(log, "job_session_close_error", job_id=context.job.id, error=_name(exc))


def _touched_database(session: AsyncSession) -> bool:
    return session.in_transaction() or bool(session.new) or bool(session.deleted)


def _name(exc: BaseException) -> str:
    return type(exc).__name__


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def advance_and_run(runtime: Runtime, delta: timedelta, **kwargs: Any) -> int:
    """Move a frozen clock forward and run whatever became due (a test convenience)."""
    clock: Any = runtime.clock
    clock.advance(delta)
    return await Dispatcher(runtime, **kwargs).run_pending()
