"""One turn of the worker loop against the database: record the completions batched since
the last turn, claim due jobs, and learn when the next job is due.

On PostgreSQL this is a single statement on a connection the dispatcher keeps (one round
trip, no BEGIN/COMMIT, no pool checkout): the claim's `FOR UPDATE SKIP LOCKED` lets any
number of workers take disjoint batches. That connection commits without waiting for the WAL
flush: if the server crashes, a lost claim puts jobs back in the queue and a lost batched
completion lets their leases expire, so those jobs run again, which at-least-once allows.
Work a handler does in its session is committed durably in its own transaction (and that
flush carries every earlier turn with it). On SQLite a turn is one short write transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Row, String, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from caretime.db import JSONDocument, UTCDateTime, transaction
from caretime.dispatch import leases
from caretime.dispatch.models import Job

CLAIMED_COLUMNS = (
    Job.id,
    Job.kind,
    Job.tenant_id,
    Job.payload,
    Job.attempts,
    Job.max_attempts,
    Job.run_at,
    Job.created_at,
)

# The sentinel row (id NULL) after the claimed rows carries how many batched completions
# applied and, when the claim took everything due, when the next job is due. The CTE's
# updates are invisible to the outer SELECT's snapshot, hence "run_at > now" rather than
# "the first queued job"; that scan walks past every due row, so it runs only when no due
# row is left (a full claim means "come back at once" anyway).
_POSTGRES_TURN = (
    text(
        """
WITH done AS (
    UPDATE jobs SET status = 'done', finished_at = :now, updated_at = :now,
                    lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY(:done) AND status = 'running' AND lease_owner = :worker
    RETURNING id
), claimed AS (
    UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = :worker,
                    lease_expires_at = :lease_until, updated_at = :now
    WHERE id IN (
        SELECT id FROM jobs WHERE status = 'queued' AND run_at <= :now
        ORDER BY run_at, priority, id LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, tenant_id, payload, attempts, max_attempts, run_at, created_at
)
SELECT id, kind, tenant_id, payload, attempts, max_attempts, run_at, created_at,
       NULL::bigint AS completed, NULL::timestamptz AS next_run_at
FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       (SELECT count(*) FROM done),
       CASE WHEN (SELECT count(*) FROM claimed) < :limit THEN
           (SELECT run_at FROM jobs WHERE status = 'queued' AND run_at > :now
            ORDER BY run_at, priority, id LIMIT 1)
       END
"""
    )
    .bindparams(
        bindparam("done", type_=ARRAY(BigInteger)),
        bindparam("now", type_=UTCDateTime()),
        bindparam("lease_until", type_=UTCDateTime()),
        bindparam("worker", type_=String()),
        bindparam("limit", type_=Integer()),
    )
    .columns(
        id=BigInteger(),
        kind=String(),
        tenant_id=String(),
        payload=JSONDocument,
        attempts=Integer(),
        max_attempts=Integer(),
        run_at=UTCDateTime(),
        created_at=UTCDateTime(),
        completed=BigInteger(),
        next_run_at=UTCDateTime(),
    )
)


@dataclass(frozen=True)
class Turn:
    claimed: Sequence[Row[Any]]
    completed: int
    next_run_at: datetime | None  # None: nothing queued later, or the claim was full


@dataclass(frozen=True)
class TurnRequest:
    worker_id: str
    done: list[int]
    limit: int
    now: datetime
    lease_until: datetime


class ClaimConnection:
    """The dispatcher's own PostgreSQL connection, kept across turns, replaced after errors."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connection: AsyncConnection | None = None
        # One statement at a time on the connection, even if a caller overlaps run_pending().
        self._lock = asyncio.Lock()

    async def turn(self, request: TurnRequest) -> Turn:
        async with self._lock:
            connection = await self._connect()
            try:
                rows = (await connection.execute(_POSTGRES_TURN, _params(request))).all()
            except BaseException:
                await self._close(invalidate=True)
                raise
        *claimed, sentinel = rows
        return Turn(claimed, int(sentinel.completed), sentinel.next_run_at)

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self.engine.connect()
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("SET synchronous_commit TO OFF"))
            self._connection = connection
        return self._connection

    async def close(self) -> None:
        async with self._lock:
            await self._close()

    async def _close(self, *, invalidate: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if not invalidate:
                # Back in the pool, this connection must commit durably again.
                await connection.execute(text("RESET synchronous_commit"))
        except BaseException:
            invalidate = True
            raise
        finally:
            if invalidate:
                await connection.invalidate()
            await connection.close()


def _params(request: TurnRequest) -> dict[str, Any]:
    return {
        "done": request.done,
        "now": request.now,
        "lease_until": request.lease_until,
        "worker": request.worker_id,
        "limit": request.limit,
    }


async def sqlite_turn(sessions: async_sessionmaker[AsyncSession], request: TurnRequest) -> Turn:
    """The same turn as three statements in one transaction (SQLite has one writer anyway)."""
    async with transaction(sessions) as session:
        completed = 0
        if request.done:
            completed = await leases.complete(
                session, request.worker_id, request.done, now=request.now
            )
        claimed = (await session.execute(_claim_statement(request))).all()
        next_run_at = None
        if len(claimed) < request.limit:
            next_run_at = await session.scalar(
                select(Job.run_at)
                .where(Job.status == "queued", Job.run_at > request.now)
                .order_by(Job.run_at)
                .limit(1)
            )
    return Turn(claimed, completed, next_run_at)


def _claim_statement(request: TurnRequest) -> Any:
    due = (
        select(Job.id)
        .where(Job.status == "queued", Job.run_at <= request.now)
        .order_by(Job.run_at, Job.priority, Job.id)
        .limit(request.limit)
    )
    return (
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()))
        .values(
            status="running",
            attempts=Job.attempts + 1,
            lease_owner=request.worker_id,
            lease_expires_at=request.lease_until,
            updated_at=request.now,
        )
        .returning(*CLAIMED_COLUMNS)
    )
