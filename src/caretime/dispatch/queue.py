"""Enqueue, cancel and reschedule jobs inside the caller's transaction.

A job exists if and only if the change that enqueued it commits: these functions only write
through the caller's session and never commit. Wake-ups are sent after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import SkipConflicts, insert_rows
from caretime.clock import ensure_utc
from caretime.dispatch.models import ACTIVE_STATUSES, DEDUPE_PREDICATE, Job
from caretime.dispatch.wakeup import mark_enqueued, session_clock

DEFAULT_MAX_ATTEMPTS = 5
_PER_JOB = ("kind", "payload", "run_at", "tenant_id", "dedupe_key", "priority", "max_attempts")
_LIVE_DUPLICATES = SkipConflicts(("dedupe_key",), DEDUPE_PREDICATE)


class NewJob(NamedTuple):
    # A tuple, not a dataclass: a batch builds one per call or message.
    kind: str
    payload: dict[str, Any]
    run_at: datetime
    tenant_id: str | None = None
    dedupe_key: str | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


def scoped_dedupe_key(tenant_id: str | None, key: str | None) -> str | None:
    """Dedupe keys are per tenant: callers' ids (shift "42") may repeat across tenants."""
    return None if key is None else f"{tenant_id or '-'}/{key}"


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime,
    tenant_id: str | None = None,
    dedupe_key: str | None = None,
    priority: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Add a job; with a dedupe key already live, return that job instead (a no-op).
    Among jobs due at the same moment, a lower `priority` runs first (like `nice`)."""
    new = NewJob(kind, payload, run_at, tenant_id, dedupe_key, priority, max_attempts)
    values = _row(new, now=_now(session))
    inserted = await session.scalars(
        _insert_ignoring_live_duplicates(session).values(values).returning(Job)
    )
    job = inserted.first()
    if job is None:
        job = await _live_job_with_key(session, values["dedupe_key"])
    mark_enqueued(session, job.run_at)
    return job


async def insert_if_new(session: AsyncSession, job: NewJob, *, now: datetime) -> int | None:
    """Add `job` unless its dedupe key is live: the new job's id, or None. Unlike `enqueue`
    it neither reads the live job nor wakes the workers (the caller does, if it wants)."""
    inserted = await session.execute(
        _insert_ignoring_live_duplicates(session).values(_row(job, now=now)).returning(Job.id)
    )
    return inserted.scalar()


async def enqueue_many(session: AsyncSession, jobs: Sequence[NewJob]) -> None:
    """Add many jobs in one statement (duplicates of live dedupe keys are skipped)."""
    if not jobs:
        return
    now = _now(session)
    columns: dict[str, list[Any]] = {
        "kind": [job.kind for job in jobs],
        "payload": [job.payload for job in jobs],
        "run_at": [ensure_utc(job.run_at) for job in jobs],
        "tenant_id": [job.tenant_id for job in jobs],
        "dedupe_key": [scoped_dedupe_key(job.tenant_id, job.dedupe_key) for job in jobs],
        "priority": [job.priority for job in jobs],
        "max_attempts": [job.max_attempts for job in jobs],
    }
    shared = {"status": "queued", "attempts": 0, "created_at": now, "updated_at": now}
    await insert_rows(session, Job, columns, shared=shared, skip=_LIVE_DUPLICATES)
    mark_enqueued(session, min(job.run_at for job in jobs))


async def enqueue_or_advance(session: AsyncSession, jobs: Sequence[NewJob]) -> None:
    """`enqueue_many` for jobs with dedupe keys, where a live job already holding a key and
    still queued for later than the new one is moved forward to the new one's time (a
    timer shared by several things comes due for the earliest of them). A running job is
    left alone: its handler must look again before it ends (see docs/dispatch.md)."""
    if not jobs:
        return
    now = _now(session)
    rows = [_row(job, now=now) for job in jobs]
    columns = {name: [row[name] for row in rows] for name in _PER_JOB}
    shared = {"status": "queued", "attempts": 0, "created_at": now, "updated_at": now}
    inserted = set(
        await insert_rows(
            session, Job, columns, shared=shared, skip=_LIVE_DUPLICATES, returning="dedupe_key"
        )
    )
    for row in rows:
        if row["dedupe_key"] not in inserted:
            await session.execute(
                update(Job)
                .where(
                    Job.dedupe_key == row["dedupe_key"],
                    Job.status == "queued",
                    Job.run_at > row["run_at"],
                )
                .values(run_at=row["run_at"], updated_at=now)
            )
    mark_enqueued(session, min(job.run_at for job in jobs))


async def cancel(session: AsyncSession, job_id: int) -> bool:
    """Cancel a queued job. Returns False if it already ran, is running, or does not exist."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="cancelled", updated_at=_now(session), finished_at=_now(session))
    )
    return _rowcount(result) == 1


async def cancel_by_dedupe_key(session: AsyncSession, tenant_id: str | None, key: str) -> bool:
    result = await session.execute(
        update(Job)
        .where(Job.dedupe_key == scoped_dedupe_key(tenant_id, key), Job.status == "queued")
        .values(status="cancelled", updated_at=_now(session), finished_at=_now(session))
    )
    return _rowcount(result) >= 1


async def reschedule(session: AsyncSession, job_id: int, run_at: datetime) -> bool:
    """Move a queued job to a new time. Returns False if it is no longer queued."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(run_at=ensure_utc(run_at), updated_at=_now(session))
    )
    if _rowcount(result) == 1:
        mark_enqueued(session, run_at)
        return True
    return False


def _row(job: NewJob, *, now: datetime) -> dict[str, Any]:
    return {
        "kind": job.kind,
        "payload": job.payload,
        "run_at": ensure_utc(job.run_at),
        "tenant_id": job.tenant_id,
        "dedupe_key": scoped_dedupe_key(job.tenant_id, job.dedupe_key),
        "priority": job.priority,
        "max_attempts": job.max_attempts,
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _insert_ignoring_live_duplicates(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    # The index's own predicate, as a literal: executemany cannot expand bound IN lists.
    live = DEDUPE_PREDICATE
    if dialect == "postgresql":
        return postgresql.insert(Job).on_conflict_do_nothing(
            index_elements=[Job.dedupe_key], index_where=live
        )
    if dialect == "sqlite":
        return sqlite.insert(Job).on_conflict_do_nothing(
            index_elements=[Job.dedupe_key], index_where=live
        )
    return insert(Job)


async def _live_job_with_key(session: AsyncSession, dedupe_key: str | None) -> Job:
    result = await session.scalars(
        select(Job).where(Job.dedupe_key == dedupe_key, Job.status.in_(ACTIVE_STATUSES))
    )
    return result.one()


def _now(session: AsyncSession) -> datetime:
    return session_clock(session).now()


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count
