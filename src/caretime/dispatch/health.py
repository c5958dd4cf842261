"""The dispatcher's readiness check: is someone picking up due work, and how far behind?"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from caretime.dispatch.models import DispatchWorker, Job
from caretime.health import Check
from caretime.runtime import Runtime

# A worker that has not beaten for this long is presumed dead (it beats every few seconds).
HEARTBEAT_STALE_AFTER = timedelta(seconds=30)
# Due work older than this means timers are firing late: not ready.
MAX_OVERDUE = timedelta(seconds=60)


async def dispatcher_check(runtime: Runtime) -> Check:
    """Ready when no due job waits longer than MAX_OVERDUE and, if any job is due, some
    worker (in any process) has beaten recently. A quiet queue needs no live worker."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        last_beat = await session.scalar(select(func.max(DispatchWorker.heartbeat_at)))
        alive = await session.scalar(
            select(func.count()).where(DispatchWorker.heartbeat_at >= now - HEARTBEAT_STALE_AFTER)
        )
        oldest_due = await session.scalar(
            select(func.min(Job.run_at)).where(Job.status == "queued", Job.run_at <= now)
        )
    overdue = _age(now, oldest_due)
    heartbeat_age = _age(now, last_beat)
    ok = (overdue or 0.0) <= MAX_OVERDUE.total_seconds() and (overdue is None or bool(alive))
    return Check(
        ok=ok,
        detail={
            "workers_alive": alive,
            "heartbeat_age_seconds": heartbeat_age,
            "oldest_overdue_seconds": overdue,
        },
    )


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 3)
