"""The prune: for each tenant and each registered table, delete rows older than the policy
allows, a batch per short transaction (no long locks), emitting nothing per row. A dry run
counts instead. The daily job queues itself again for the next day."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import transaction
from caretime.dispatch import JobContext, enqueue, job_handler
from caretime.observability import log_event
from caretime.retention.registry import Prunable, prunables
from caretime.runtime import Runtime
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import RetentionPolicy
from caretime.tenancy.service import policy_of

log = logging.getLogger("caretime.retention")
PRUNE = "retention.prune"
BATCH = 1000
DAILY = timedelta(days=1)


@dataclass(frozen=True)
class Found:
    tenant_id: str | None
    table: str
    older_than: datetime
    rows: int


async def prune(runtime: Runtime, *, now: datetime, dry_run: bool = False) -> list[Found]:
    """What each tenant's policy lets go (counted on a dry run, else deleted)."""
    found = []
    for tenant_id, policy in await _policies(runtime):
        for prunable in prunables():
            keep = prunable.keep_for(policy)
            if keep is None:
                continue
            condition = _prunable_rows(prunable, tenant_id, now - keep)
            rows = await (_count if dry_run else _delete)(runtime, prunable, condition)
            if rows:
                found.append(Found(tenant_id, prunable.name, now - keep, rows))
    return found


async def _policies(runtime: Runtime) -> list[tuple[str | None, RetentionPolicy]]:
    """Every tenant's retention, and the defaults for rows of no tenant (system jobs)."""
    async with runtime.sessions() as session:
        tenants = (await session.scalars(select(Tenant))).all()
    return [(t.id, policy_of(t).retention) for t in tenants] + [(None, RetentionPolicy())]


def _prunable_rows(
    prunable: Prunable, tenant_id: str | None, cutoff: datetime
) -> list[ColumnElement[bool]]:
    model: Any = prunable.model
    owner = model.tenant_id.is_(None) if tenant_id is None else model.tenant_id == tenant_id
    condition = [owner, prunable.age < cutoff]
    return condition if prunable.finished is None else [*condition, prunable.finished]


async def _count(runtime: Runtime, prunable: Prunable, condition: list[Any]) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(prunable.model).where(*condition)
        )
    return int(count or 0)


async def _delete(runtime: Runtime, prunable: Prunable, condition: list[Any]) -> int:
    """Batch after batch, each in its own short transaction."""
    total = 0
    while True:
        async with transaction(runtime.sessions) as session:
            deleted = await _delete_batch(session, prunable, condition)
        total += deleted
        if deleted < BATCH:
            return total


async def _delete_batch(session: AsyncSession, prunable: Prunable, condition: list[Any]) -> int:
    batch = select(prunable.key).where(*condition).limit(BATCH).scalar_subquery()
    result = await session.execute(
        delete(prunable.model)
        .where(prunable.key.in_(batch))
        .execution_options(synchronize_session=False)
    )
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


@job_handler(PRUNE)
async def daily_prune(ctx: JobContext, payload: dict[str, Any]) -> None:
    found = await prune(ctx.runtime, now=ctx.now())
    log_event(log, "pruned", tables=len(found), rows=sum(f.rows for f in found))
    ctx.run_again_at(ctx.now() + DAILY)


async def ensure_scheduled(runtime: Runtime) -> None:
    """Queue the daily prune (at the next 03:00 UTC) unless it is queued: every process that
    runs workers calls this at start-up."""
    now = runtime.clock.now()
    at = now.replace(hour=3, minute=0, second=0, microsecond=0)
    async with transaction(runtime.sessions) as session:
        await enqueue(session, PRUNE, {}, run_at=at if at > now else at + DAILY, dedupe_key=PRUNE)
