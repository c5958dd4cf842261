"""The dispatcher when the database refuses connections (a pool exhausted, "too many
clients"): a failing job's outcome is kept and recorded at the next turn, not left `running`
until its lease ends, and nothing escapes a job's task."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch import JobContext, job_handler
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.dispatch.support import load_job, make_job

pytestmark = pytest.mark.postgres_only


@job_handler("tests.fails")
async def fails(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise RuntimeError("the handler failed")


@pytest.fixture
async def small_pool(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    """Two connections and no overflow: the dispatcher's claim connection takes one."""
    tight = settings.model_copy(
        update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 0.2}
    )
    runtime = Runtime.build(tight, clock)
    yield runtime
    await runtime.close()


async def test_a_failure_the_database_refuses_to_record_is_recorded_at_the_next_turn(
    small_pool: Runtime, clock: FrozenClock
) -> None:
    job = await make_job(small_pool, kind="tests.fails")
    dispatcher = Dispatcher(small_pool)
    unretrieved: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unretrieved.append(context))
    async with small_pool.engine.connect() as held:  # the last free connection
        await held.exec_driver_sql("SELECT 1")
        assert await dispatcher.run_pending() == 1  # ran, failed, could not say so
    stuck = await load_job(small_pool, job.id)
    assert (stuck.status, stuck.last_error) == ("running", None)

    await dispatcher.record_failures()  # the next turn, with a connection free again
    gc.collect()  # a task that ended with an exception nobody took reports it here
    recorded = await load_job(small_pool, job.id)
    assert recorded.status == "queued"
    assert recorded.lease_owner is None
    assert recorded.last_error == "RuntimeError: the handler failed"
    assert unretrieved == []
