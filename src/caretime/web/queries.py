"""Operator views of the jobs table for one tenant: health counts and lists, and retry and
cancel through dispatch's operations once the job is known to be the tenant's.

Jobs without a tenant (system work) are never shown or touched from the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import operations
from caretime.dispatch.errors import JobNotFound
from caretime.dispatch.models import Job

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
    """Queued and running jobs by when they are due; failed ones, the latest failure first."""
    order: Any = Job.finished_at.desc() if status == "failed" else Job.run_at
    result = await session.scalars(
        select(Job)
        .where(Job.tenant_id == tenant_id, Job.status == status)
        .order_by(order, Job.id)
        .limit(limit)
    )
    return result.all()


async def cancel_job(session: AsyncSession, tenant_id: str, job_id: int) -> None:
    await _tenant_job(session, tenant_id, job_id)
    await operations.cancel_job(session, job_id)


async def retry_job(session: AsyncSession, tenant_id: str, job_id: int) -> None:
    await _tenant_job(session, tenant_id, job_id)
    await operations.retry_job(session, job_id)


async def _tenant_job(session: AsyncSession, tenant_id: str, job_id: int) -> Job:
    job = await operations.get_job(session, job_id)
    if job.tenant_id != tenant_id:
        # Another tenant's job does not exist, as far as this viewer can tell.
        raise JobNotFound(f"job {job_id} does not exist")
    return job
