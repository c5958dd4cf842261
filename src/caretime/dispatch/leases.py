"""The queries that keep claims honest: worker heartbeats, lease extension, recovery of jobs
whose worker died, and release of jobs a stopping worker did not finish."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.models import DispatchWorker, Job

LOST_WORKER_ERROR = "LeaseExpired: the worker running the last attempt stopped responding"


def job_ids_in(session: AsyncSession, ids: Collection[int]) -> ColumnElement[bool]:
    """`id = ANY($1)` on PostgreSQL (one prepared statement for any batch size), IN on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam("job_ids", list(ids), type_=postgresql.ARRAY(BigInteger))
        return Job.id == any_(array)
    return Job.id.in_(list(ids))


async def beat(
    session: AsyncSession, worker: DispatchWorker, *, now: datetime, forget_after: timedelta
) -> None:
    """Record that this worker is alive; forget workers silent for longer than `forget_after`."""
    values = {
        "id": worker.id,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "concurrency": worker.concurrency,
        "started_at": worker.started_at,
        "heartbeat_at": now,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(DispatchWorker).values(values)
    await session.execute(
        upsert.on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
    )
    await session.execute(
        delete(DispatchWorker).where(DispatchWorker.heartbeat_at < now - forget_after)
    )


async def forget_worker(session: AsyncSession, worker_id: str) -> None:
    await session.execute(delete(DispatchWorker).where(DispatchWorker.id == worker_id))


async def extend(
    session: AsyncSession, worker_id: str, ids: Collection[int], *, until: datetime
) -> None:
    """Push out the lease of jobs this worker is still running (long handlers)."""
    if ids:
        await session.execute(
            update(Job)
            .where(job_ids_in(session, ids), Job.status == "running", Job.lease_owner == worker_id)
            .values(lease_expires_at=until)
        )


async def hold(session: AsyncSession, worker_id: str, job_id: int, *, until: datetime) -> bool:
    """Extend this worker's lease on one running job; False when the job is no longer ours."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.lease_owner == worker_id)
        .values(lease_expires_at=until)
    )
    return _rowcount(result) == 1


async def expire_dead_local_workers(
    session: AsyncSession, *, hostname: str, alive_here: Collection[str], now: datetime
) -> int:
    """End at once the leases of workers on this machine whose process is gone (a SIGKILLed
    or crashed predecessor), so that `recover_expired` returns their jobs now rather than
    when their leases run out. A process is gone when its pid no longer exists, or is ours
    while the worker id is none of ours (a container restarted with the same pid). A pid
    reused by another process counts as alive: the lease still bounds that case. Hostnames
    must tell machines apart."""
    rows = await session.execute(
        select(DispatchWorker.id, DispatchWorker.pid).where(DispatchWorker.hostname == hostname)
    )
    dead = [id_ for id_, pid in rows if id_ not in alive_here and not _process_alive(pid)]
    if not dead:
        return 0
    result = await session.execute(
        update(Job)
        .where(Job.status == "running", Job.lease_owner.in_(dead))
        .values(lease_expires_at=now - timedelta(microseconds=1))
    )
    await session.execute(delete(DispatchWorker).where(DispatchWorker.id.in_(dead)))
    return _rowcount(result)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # not one of this process's workers (checked by the caller)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


async def recover_expired(session: AsyncSession, *, now: datetime) -> int:
    """Jobs whose worker died become claimable again; if that was their last attempt, they
    fail instead (a job that kills its worker every time must not loop forever)."""
    expired = (Job.status == "running", Job.lease_expires_at < now)
    released = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    await session.execute(
        update(Job)
        .where(*expired, Job.attempts >= Job.max_attempts)
        .values(status="failed", last_error=LOST_WORKER_ERROR, finished_at=now, **released)
    )
    result = await session.execute(update(Job).where(*expired).values(status="queued", **released))
    return _rowcount(result)


async def release(
    session: AsyncSession, worker_id: str, ids: Collection[int], *, now: datetime
) -> int:
    """Hand back jobs a stopping worker claimed but did not finish; the interrupted try does
    not count as an attempt."""
    if not ids:
        return 0
    result = await session.execute(
        update(Job)
        .where(job_ids_in(session, ids), Job.status == "running", Job.lease_owner == worker_id)
        .values(
            status="queued",
            attempts=Job.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return _rowcount(result)


async def complete(
    session: AsyncSession, worker_id: str, ids: Collection[int], *, now: datetime
) -> int:
    """Mark jobs done, only those this worker still holds. Returns how many were."""
    result = await session.execute(
        update(Job)
        .where(job_ids_in(session, ids), Job.status == "running", Job.lease_owner == worker_id)
        .values(
            status="done", finished_at=now, updated_at=now, lease_owner=None, lease_expires_at=None
        )
    )
    return _rowcount(result)


async def run_again(
    session: AsyncSession, worker_id: str, job_id: int, *, at: datetime, now: datetime
) -> int:
    """Queue a job this worker holds again for `at` (it finished a turn and has more to do)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.lease_owner == worker_id)
        .values(
            status="queued",
            run_at=at,
            attempts=0,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return _rowcount(result)


async def count_by_status(session: AsyncSession, statuses: Sequence[str]) -> dict[str, int]:
    """One count per status, each answered from that status's partial index (a GROUP BY
    over the whole table would read all history)."""
    counts = [
        select(func.count()).select_from(Job).where(Job.status == status).scalar_subquery()
        for status in statuses
    ]
    row = (await session.execute(select(*counts))).one()
    return dict(zip(statuses, row, strict=True))


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count
