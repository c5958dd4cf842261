"""Follow-ups: work that a change causes but that must not lengthen the change's transaction
(a claim holds the claimed row's lock until it commits; its notices can come a moment later).

`follow_up` writes a job in the change's transaction, due a little later, and asks for the
same work to run at once after the commit (`db.after_commit`). That run takes the job first
(queued → done, in its own transaction, with the work), so the work happens once: right
after the commit, or, if the process died in between or the run failed, by any worker when
the job falls due.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import after_commit
from caretime.dispatch.models import Job
from caretime.dispatch.queue import enqueue
from caretime.dispatch.registry import JobContext, job_handler
from caretime.dispatch.wakeup import session_clock

# How long a follow-up's job waits for the run right after the commit before a worker does it.
BACKSTOP = timedelta(seconds=30)
Work = Callable[[AsyncSession, str, dict[str, Any]], Awaitable[None]]
_work: dict[str, Work] = {}


def follow_up_handler(kind: str) -> Callable[[Work], Work]:
    """Register `async def work(session, tenant_id, payload)` as the follow-up `kind` (also
    its job's handler)."""

    def register(work: Work) -> Work:
        _work[kind] = work

        async def as_job(ctx: JobContext, payload: dict[str, Any]) -> None:
            assert ctx.job.tenant_id is not None
            await work(ctx.session, ctx.job.tenant_id, payload)

        job_handler(kind)(as_job)
        return work

    return register


async def follow_up(
    session: AsyncSession, kind: str, payload: dict[str, Any], *, tenant_id: str, dedupe_key: str
) -> None:
    """Do `kind`'s work after this transaction commits, exactly once (see the module)."""
    now = session_clock(session).now()
    job = await enqueue(
        session, kind, payload, run_at=now + BACKSTOP, tenant_id=tenant_id, dedupe_key=dedupe_key
    )
    job_id, work = job.id, _work[kind]

    async def run_now(session: AsyncSession) -> None:
        if await _take(session, job_id):
            await work(session, tenant_id, payload)

    after_commit(session, run_now)


async def _take(session: AsyncSession, job_id: int) -> bool:
    """Finish the job before a worker starts it; False if a worker has it already. The row
    stays locked until this transaction ends, so no worker claims it meanwhile, and a
    rollback leaves it queued."""
    now = session_clock(session).now()
    taken = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="done", finished_at=now, updated_at=now)
    )
    return getattr(taken, "rowcount", 0) == 1
