"""Enqueue semantics: transactional, ordered by run_at, deduplicated, cancellable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from caretime.db import transaction
from caretime.dispatch import JobContext, enqueue, job_handler
from caretime.dispatch.models import Job
from caretime.dispatch.queue import cancel, cancel_by_dedupe_key
from caretime.dispatch.worker import Dispatcher, advance_and_run
from caretime.runtime import Runtime

RAN: list[tuple[str, Any]] = []


@job_handler("tests.record")
async def record(ctx: JobContext, payload: dict[str, Any]) -> None:
    RAN.append((payload["name"], ctx.now()))


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    RAN.clear()


async def _enqueue(runtime: Runtime, name: str, delay: timedelta, **kwargs: Any) -> Job:
    async with transaction(runtime.sessions) as session:
        return await enqueue(
            session,
            "tests.record",
            {"name": name},
            run_at=runtime.clock.now() + delay,
            **kwargs,
        )


async def test_job_from_rolled_back_transaction_never_runs(runtime: Runtime) -> None:
    async def failing_change() -> None:
        async with transaction(runtime.sessions) as session:
            await enqueue(session, "tests.record", {"name": "ghost"}, run_at=runtime.clock.now())
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    await _enqueue(runtime, "real", timedelta(0))
    assert await Dispatcher(runtime).run_pending() == 1
    assert [name for name, _ in RAN] == ["real"]


async def test_jobs_wait_for_run_at_and_run_in_order(runtime: Runtime) -> None:
    await _enqueue(runtime, "third", timedelta(minutes=3))
    await _enqueue(runtime, "first", timedelta(minutes=1))
    await _enqueue(runtime, "second", timedelta(minutes=2))
    assert await Dispatcher(runtime).run_pending() == 0
    assert await advance_and_run(runtime, timedelta(seconds=59)) == 0
    assert await advance_and_run(runtime, timedelta(minutes=5)) == 3
    assert [name for name, _ in RAN] == ["first", "second", "third"]


async def test_same_dedupe_key_enqueues_once(runtime: Runtime) -> None:
    first = await _enqueue(runtime, "a", timedelta(0), dedupe_key="k1")
    again = await _enqueue(runtime, "b", timedelta(0), dedupe_key="k1")
    assert again.id == first.id
    assert await Dispatcher(runtime).run_pending() == 1
    # Once the job is done its key is free again.
    await _enqueue(runtime, "c", timedelta(0), dedupe_key="k1")
    assert await Dispatcher(runtime).run_pending() == 1
    assert [name for name, _ in RAN] == ["a", "c"]


async def test_cancelled_jobs_do_not_run(runtime: Runtime) -> None:
    by_id = await _enqueue(runtime, "by-id", timedelta(0))
    await _enqueue(runtime, "by-key", timedelta(0), dedupe_key="cancel-me")
    await _enqueue(runtime, "kept", timedelta(0))
    async with transaction(runtime.sessions) as session:
        assert await cancel(session, by_id.id)
        assert await cancel_by_dedupe_key(session, None, "cancel-me")
    await Dispatcher(runtime).run_pending()
    assert [name for name, _ in RAN] == ["kept"]
    async with runtime.sessions() as session:
        statuses = sorted((await session.scalars(select(Job.status))).all())
    assert statuses == ["cancelled", "cancelled", "done"]
