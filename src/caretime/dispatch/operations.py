"""What operators do with jobs: look at them (the failed ones are the dead-letter view),
retry a failed one by hand, cancel a queued one. Like every service, never commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.errors import JobNotFound, JobStateConflict
from caretime.dispatch.models import ACTIVE_STATUSES, Job
from caretime.dispatch.queue import cancel
from caretime.dispatch.wakeup import mark_enqueued, session_clock

RETRYABLE_STATUSES = ("failed", "cancelled")


async def list_jobs(
    session: AsyncSession,
    *,
    status: str | None = None,
    kind: str | None = None,
    tenant_id: str | None = None,
    limit: int = 50,
) -> Sequence[Job]:
    """Newest first; `status="failed"` is the dead-letter queue."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    return (await session.scalars(query)).all()


async def get_job(session: AsyncSession, job_id: int) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist")
    return job


async def retry_job(session: AsyncSession, job_id: int) -> Job:
    """Queue a failed (or cancelled) job again, now, with a fresh set of attempts. Its last
    error stays visible until the next attempt overwrites it."""
    job = await get_job(session, job_id)
    if job.status not in RETRYABLE_STATUSES:
        raise JobStateConflict(f"job {job_id} is {job.status}; only failed or cancelled jobs retry")
    if job.dedupe_key is not None and await _live_duplicate(session, job):
        raise JobStateConflict(f"another live job already holds job {job_id}'s dedupe key")
    now = session_clock(session).now()
    job.status, job.attempts, job.run_at = "queued", 0, now
    job.finished_at, job.updated_at = None, now
    await session.flush()
    mark_enqueued(session, now)
    return job


async def cancel_job(session: AsyncSession, job_id: int) -> Job:
    job = await get_job(session, job_id)
    if not await cancel(session, job_id):
        raise JobStateConflict(f"job {job_id} is {job.status}; only queued jobs can be cancelled")
    await session.refresh(job)
    return job


async def _live_duplicate(session: AsyncSession, job: Job) -> bool:
    duplicate = await session.scalar(
        select(Job.id).where(
            Job.dedupe_key == job.dedupe_key, Job.status.in_(ACTIVE_STATUSES), Job.id != job.id
        )
    )
    return duplicate is not None
