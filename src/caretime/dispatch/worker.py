"""The worker: claims due jobs, runs their handlers, records the outcome.

Claims are atomic (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one `UPDATE ... RETURNING` under
SQLite's single writer), so any number of workers can share a database. A handler's work
and its job's completion commit in one transaction, and only if this worker still holds
the lease: a worker that lost its lease cannot double-apply an effect.
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

from sqlalchemy import Row, select, update

from caretime.db import transaction
from caretime.dispatch.errors import PermanentFailure, RetryLater
from caretime.dispatch.models import Job
from caretime.dispatch.registry import HandlerRegistry, JobContext, JobInfo, handlers
from caretime.dispatch.retry import DEFAULT_RETRY, RetryPolicy
from caretime.observability import log_event
from caretime.runtime import Runtime

log = logging.getLogger("caretime.dispatch")
MAX_SLEEP = 1.0
_CLAIMED_COLUMNS = (
    Job.id,
    Job.kind,
    Job.tenant_id,
    Job.payload,
    Job.attempts,
    Job.max_attempts,
    Job.run_at,
    Job.created_at,
)


class LeaseLost(Exception):
    """Another worker took this job over (our lease expired); our work must not commit."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    def __init__(
        self,
        runtime: Runtime,
        *,
        registry: HandlerRegistry = handlers,
        concurrency: int = 32,
        batch_size: int = 100,
        lease: timedelta = timedelta(seconds=60),
        retry: RetryPolicy = DEFAULT_RETRY,
        worker_id: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.lease = lease
        self.retry = retry
        self.worker_id = worker_id or new_worker_id()

    async def run_pending(self) -> int:
        """Run every job due now, batch after batch, until none is due. Returns how many ran.
        Tests call this after advancing a frozen clock."""
        total = 0
        while True:
            await self.requeue_expired_leases()
            claimed = await self.claim(self.batch_size)
            if not claimed:
                return total
            await self._run_batch(claimed)
            total += len(claimed)

    async def claim(self, limit: int) -> Sequence[Row[Any]]:
        now = self.runtime.clock.now()
        due = (
            select(Job.id)
            .where(Job.status == "queued", Job.run_at <= now)
            .order_by(Job.run_at, Job.priority.desc(), Job.id)
            .limit(limit)
        )
        if self.runtime.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claim = (
            update(Job)
            .where(Job.id.in_(due.scalar_subquery()))
            .values(
                status="running",
                attempts=Job.attempts + 1,
                lease_owner=self.worker_id,
                lease_expires_at=now + self.lease,
                updated_at=now,
            )
            .returning(*_CLAIMED_COLUMNS)
        )
        async with transaction(self.runtime.sessions) as session:
            rows = (await session.execute(claim)).all()
        return sorted(rows, key=lambda row: (row.run_at, row.id))

    async def requeue_expired_leases(self) -> int:
        """Jobs whose worker died (lease expired) become claimable again."""
        now = self.runtime.clock.now()
        async with transaction(self.runtime.sessions) as session:
            result = await session.execute(
                update(Job)
                .where(Job.status == "running", Job.lease_expires_at < now)
                .values(status="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
            )
        count: int = result.rowcount  # type: ignore[attr-defined]
        return count

    async def _run_batch(self, claimed: Sequence[Row[Any]]) -> None:
        limit = asyncio.Semaphore(self.concurrency)

        async def bounded(row: Row[Any]) -> None:
            async with limit:
                await self.run_one(row)

        await asyncio.gather(*(bounded(row) for row in claimed))

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
        try:
            handler = self.registry.get(info.kind)
            async with transaction(self.runtime.sessions) as session:
                await handler(JobContext(session, self.runtime, info), row.payload)
                await self._finish(session, info.id, status="done")
        except LeaseLost:
            log_event(log, "job_lease_lost", job_id=info.id, kind=info.kind)
        except Exception as exc:
            await self._after_failure(info, exc)

    async def _finish(self, session: Any, job_id: int, *, status: str) -> None:
        now = self.runtime.clock.now()
        result = await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.lease_owner == self.worker_id)
            .values(
                status=status,
                finished_at=now,
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        if result.rowcount != 1:
            raise LeaseLost(job_id)

    async def _after_failure(self, info: JobInfo, exc: Exception) -> None:
        now = self.runtime.clock.now()
        run_at = self._next_attempt(info, exc, now)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        values: dict[str, Any] = {
            "last_error": error,
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if run_at is None:
            values.update(status="failed", finished_at=now)
            log.warning(
                "job_failed",
                extra={
                    "fields": {"job_id": info.id, "kind": info.kind, "error": type(exc).__name__}
                },
            )
        else:
            values.update(status="queued", run_at=run_at)
        async with transaction(self.runtime.sessions) as session:
            await session.execute(
                update(Job)
                .where(Job.id == info.id, Job.lease_owner == self.worker_id)
                .values(**values)
            )

    def _next_attempt(self, info: JobInfo, exc: Exception, now: datetime) -> datetime | None:
        if isinstance(exc, PermanentFailure) or info.attempts >= info.max_attempts:
            return None
        if isinstance(exc, RetryLater) and (exc.at or exc.delay):
            return exc.at or now + (exc.delay or timedelta(0))
        return self.retry.next_run_at(
            attempts=info.attempts,
            max_attempts=info.max_attempts,
            created_at=info.created_at,
            now=now,
        )

    async def seconds_until_next_job(self) -> float:
        async with self.runtime.sessions() as session:
            next_run_at = await session.scalar(
                select(Job.run_at).where(Job.status == "queued").order_by(Job.run_at).limit(1)
            )
        if next_run_at is None:
            return MAX_SLEEP
        delta = (next_run_at - self.runtime.clock.now()).total_seconds()
        return max(0.0, min(MAX_SLEEP, delta))

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Claim and run until `stop` is set; sleep until the next job or a wake-up."""
        signal = self.runtime.waker.subscribe()
        try:
            while not stop.is_set():
                try:
                    await self.run_pending()
                    await self._sleep(signal, stop)
                except Exception:
                    log.exception("dispatcher_loop_error")
                    await asyncio.sleep(MAX_SLEEP)
        finally:
            self.runtime.waker.unsubscribe(signal)

    async def _sleep(self, signal: asyncio.Event, stop: asyncio.Event) -> None:
        timeout = await self.seconds_until_next_job()
        if timeout <= 0:
            return
        waits = [asyncio.ensure_future(signal.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        signal.clear()


async def advance_and_run(runtime: Runtime, delta: timedelta, **kwargs: Any) -> int:
    """Move a frozen clock forward and run whatever became due (a test convenience)."""
    clock: Any = runtime.clock
    clock.advance(delta)
    return await Dispatcher(runtime, **kwargs).run_pending()
