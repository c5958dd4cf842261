"""Builders for dispatch tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from caretime.db import transaction
from caretime.dispatch import enqueue
from caretime.dispatch.models import Job
from caretime.runtime import Runtime


async def make_job(
    runtime: Runtime,
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    delay: timedelta = timedelta(0),
    **options: Any,
) -> Job:
    async with transaction(runtime.sessions) as session:
        return await enqueue(
            session, kind, payload or {}, run_at=runtime.clock.now() + delay, **options
        )


async def load_job(runtime: Runtime, job_id: int) -> Job:
    async with runtime.sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job
