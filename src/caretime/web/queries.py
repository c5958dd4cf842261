"""Operator views of the jobs table for one tenant: health counts, lists, retry and cancel.

These belong with dispatch; they live here until dispatch exposes its own read functions.
Every statement filters on the tenant: jobs without a tenant (system work) are not shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.models import ACTIVE_STATUSES, Job
from caretime.dispatch.queue import cancel
from caretime.dispatch.wakeup import mark_enqueued
from caretime.errors import Conflict, NotFound

# A healthy dispatcher claims a due job within about a second; a minute late is a problem.
OVERDUE_AFTER = timedelta(minutes=1)
LISTED_STATUSES = ("queued", "running", "failed")
LIST_LIMIT = 100


@dataclass(frozen=True)
class JobHealth:
    queued: int
    overdue: int
    running: int
    failed: int

    @property
    def healthy(self) -> bool:
        return self.overdue == 0 and self.failed == 0


async def job_health(session: AsyncSession, tenant_id: str, *, now: datetime) -> JobHealth:
    is_overdue = (Job.status == "queued") & (Job.run_at < now - OVERDUE_AFTER)
    row = (
        await session.execute(
            select(
                func.count().filter(Job.status == "queued"),
                func.count().filter(is_overdue),
                func.count().filter(Job.status == "running"),
                func.count().filter(Job.status == "failed"),
            ).where(Job.tenant_id == tenant_id, Job.status.in_(LISTED_STATUSES))
        )
    ).one()
    return JobHealth(*row)


async def list_jobs(
    session: AsyncSession, tenant_id: str, status: str, *, limit: int = LIST_LIMIT
) -> Sequence[Job]:
    order: Any = Job.finished_at.desc() if status == "failed" else Job.run_at
    result = await session.scalars(
        select(Job)
        .where(Job.tenant_id == tenant_id, Job.status == status)
        .order_by(order, Job.id)
        .limit(limit)
    )
    return result.all()


async def tenant_job(session: AsyncSession, tenant_id: str, job_id: int) -> Job:
    job = await session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def cancel_job(session: AsyncSession, tenant_id: str, job_id: int) -> None:
    await tenant_job(session, tenant_id, job_id)
    if not await cancel(session, job_id):
        raise Conflict(f"job {job_id} is no longer queued, so it cannot be cancelled")


async def retry_job(session: AsyncSession, tenant_id: str, job_id: int, *, now: datetime) -> None:
    """Give a failed job a fresh set of attempts, due now. Its handler re-reads the world, so a
    retry after the world moved on does nothing harmful."""
    job = await tenant_job(session, tenant_id, job_id)
    if job.status != "failed":
        raise Conflict(f"job {job_id} has not failed, so there is nothing to retry")
    if job.dedupe_key is not None and await _live_duplicate(session, job):
        raise Conflict("another job for the same purpose is already queued or running")
    await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "failed")
        .values(status="queued", attempts=0, run_at=now, finished_at=None, updated_at=now)
    )
    mark_enqueued(session, now)


async def _live_duplicate(session: AsyncSession, job: Job) -> bool:
    duplicate = await session.scalar(
        select(Job.id).where(Job.dedupe_key == job.dedupe_key, Job.status.in_(ACTIVE_STATUSES))
    )
    return duplicate is not None
