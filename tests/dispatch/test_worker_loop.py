"""The worker loop: wake-ups, leases and their heartbeat, graceful shutdown, readiness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.db import transaction
from caretime.dispatch import JobContext, enqueue, job_handler
from caretime.dispatch.leases import LOST_WORKER_ERROR
from caretime.dispatch.listener import PostgresListener
from caretime.dispatch.models import DispatchWorker, Job
from caretime.dispatch.pool import WorkerPool
from caretime.dispatch.wakeup import Waker
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.dispatch.support import load_job, make_job

STARTED: dict[str, asyncio.Event] = {}
RELEASE: dict[str, asyncio.Event] = {}
WAIT = 20.0  # seconds: a bound on waiting, never an assertion


@pytest.fixture(autouse=True)
def _events() -> None:
    STARTED.clear()
    RELEASE.clear()


def _event(events: dict[str, asyncio.Event], name: str) -> asyncio.Event:
    return events.setdefault(name, asyncio.Event())


@job_handler("tests.signal")
async def signal(ctx: JobContext, payload: dict[str, Any]) -> None:
    _event(STARTED, payload["name"]).set()


@job_handler("tests.hold")
async def hold(ctx: JobContext, payload: dict[str, Any]) -> None:
    _event(STARTED, payload["name"]).set()
    await _event(RELEASE, payload["name"]).wait()


@job_handler("tests.follow_up_then_fail_once")
async def follow_up_then_fail_once(ctx: JobContext, payload: dict[str, Any]) -> None:
    await enqueue(ctx.session, "tests.signal", {"name": "follow-up"}, run_at=ctx.now())
    if ctx.job.attempts == 1 and payload.get("fail_first"):
        raise RuntimeError("after writing")


@pytest.fixture
async def pool_of(runtime: Runtime) -> AsyncIterator[Callable[..., WorkerPool]]:
    pools: list[WorkerPool] = []

    def start(**options: Any) -> WorkerPool:
        pools.append(WorkerPool.start(runtime, count=1, concurrency=4, **options))
        return pools[-1]

    yield start
    for event in RELEASE.values():
        event.set()
    for pool in pools:
        await pool.stop()


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT):
        while not await check():  # noqa: ASYNC110 - the database has no event to await
            await asyncio.sleep(0.02)


async def _count_jobs(runtime: Runtime, *conditions: Any) -> int:
    async with runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0


async def test_handler_work_commits_only_with_its_completion(runtime: Runtime) -> None:
    job = await make_job(runtime, kind="tests.follow_up_then_fail_once", payload={"fail_first": 1})
    await Dispatcher(runtime).run_pending()
    assert await _count_jobs(runtime, Job.kind == "tests.signal") == 0
    await Dispatcher(runtime).run_pending()  # no time passed: the retry is not due yet
    runtime.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    assert await Dispatcher(runtime).run_pending() == 2  # the retry, then its follow-up
    assert (await load_job(runtime, job.id)).status == "done"
    assert await _count_jobs(runtime, Job.kind == "tests.signal", Job.status == "done") == 1


async def test_commit_and_frozen_clock_wake_a_running_worker(
    runtime: Runtime, clock: FrozenClock, pool_of: Callable[..., WorkerPool]
) -> None:
    pool_of()
    await make_job(runtime, kind="tests.signal", payload={"name": "now"})
    await make_job(
        runtime, kind="tests.signal", payload={"name": "later"}, delay=timedelta(minutes=10)
    )
    async with asyncio.timeout(WAIT):
        await _event(STARTED, "now").wait()
    assert not _event(STARTED, "later").is_set()
    clock.advance(timedelta(minutes=10))
    async with asyncio.timeout(WAIT):
        await _event(STARTED, "later").wait()


async def test_graceful_shutdown_lets_running_handlers_finish(
    runtime: Runtime, pool_of: Callable[..., WorkerPool]
) -> None:
    pool = pool_of()
    job = await make_job(runtime, kind="tests.hold", payload={"name": "a"})
    async with asyncio.timeout(WAIT):
        await _event(STARTED, "a").wait()
    stopping = asyncio.create_task(pool.stop())
    await asyncio.sleep(0)
    _event(RELEASE, "a").set()
    await stopping
    assert (await load_job(runtime, job.id)).status == "done"


async def test_graceful_shutdown_releases_what_it_cannot_finish(
    runtime: Runtime, pool_of: Callable[..., WorkerPool]
) -> None:
    pool = pool_of(shutdown_grace=timedelta(0))
    job = await make_job(runtime, kind="tests.hold", payload={"name": "stuck"})
    async with asyncio.timeout(WAIT):
        await _event(STARTED, "stuck").wait()
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DispatchWorker)) == 1
    await pool.stop()
    released = await load_job(runtime, job.id)
    assert (released.status, released.attempts, released.lease_owner) == ("queued", 0, None)
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DispatchWorker)) == 0


async def test_heartbeat_extends_the_lease_of_a_long_handler(
    runtime: Runtime, clock: FrozenClock, pool_of: Callable[..., WorkerPool]
) -> None:
    lease = timedelta(seconds=30)
    pool_of(lease=lease, heartbeat=timedelta(milliseconds=20))
    job = await make_job(runtime, kind="tests.hold", payload={"name": "long"})
    async with asyncio.timeout(WAIT):
        await _event(STARTED, "long").wait()
    clock.advance(timedelta(seconds=20))

    async def extended() -> bool:
        return (await load_job(runtime, job.id)).lease_expires_at == clock.now() + lease

    await _eventually(extended)
    clock.advance(timedelta(seconds=20))  # past the first lease, within the extended one
    assert await Dispatcher(runtime).requeue_expired_leases() == 0
    assert (await load_job(runtime, job.id)).status == "running"


async def test_expired_lease_is_taken_over_and_the_old_owner_cannot_commit(
    runtime: Runtime, clock: FrozenClock
) -> None:
    job = await make_job(runtime, kind="tests.follow_up_then_fail_once")
    presumed_dead = Dispatcher(runtime, lease=timedelta(seconds=30))
    [claimed] = await presumed_dead.claim(1)
    clock.advance(timedelta(seconds=31))
    assert await Dispatcher(runtime).run_pending() == 2  # the job and its follow-up
    await presumed_dead.run_one(claimed)  # wakes up late: its work must not commit
    await presumed_dead.close()
    assert (await load_job(runtime, job.id)).attempts == 2
    assert await _count_jobs(runtime, Job.kind == "tests.signal") == 1


async def test_a_job_that_keeps_killing_workers_fails_after_max_attempts(
    runtime: Runtime, clock: FrozenClock
) -> None:
    job = await make_job(runtime, kind="tests.signal", payload={"name": "x"}, max_attempts=1)
    presumed_dead = Dispatcher(runtime, lease=timedelta(seconds=30))
    await presumed_dead.claim(1)
    await presumed_dead.close()
    clock.advance(timedelta(seconds=31))
    assert await Dispatcher(runtime).run_pending() == 0
    failed = await load_job(runtime, job.id)
    assert (failed.status, failed.last_error) == ("failed", LOST_WORKER_ERROR)


async def test_readiness_reports_heartbeat_and_overdue_age(
    runtime: Runtime, clock: FrozenClock, client: httpx.AsyncClient
) -> None:
    await make_job(
        runtime, kind="tests.signal", payload={"name": "r"}, delay=-timedelta(seconds=30)
    )

    async def dispatcher_health() -> tuple[int, dict[str, Any]]:
        response = await client.get("/health/ready")
        return response.status_code, response.json()["checks"]["dispatcher"]["detail"]

    assert await dispatcher_health() == (
        503,
        {"workers_alive": 0, "heartbeat_age_seconds": None, "oldest_overdue_seconds": 30.0},
    )
    worker = Dispatcher(runtime)
    await worker.beat()
    assert (await dispatcher_health())[0] == 200
    clock.advance(timedelta(seconds=31))
    assert await dispatcher_health() == (
        503,
        {"workers_alive": 0, "heartbeat_age_seconds": 31.0, "oldest_overdue_seconds": 61.0},
    )
    await worker.beat()
    await worker.run_pending()
    assert await dispatcher_health() == (
        200,
        {"workers_alive": 1, "heartbeat_age_seconds": 0.0, "oldest_overdue_seconds": None},
    )


async def test_metrics_count_outcomes_and_lateness(runtime: Runtime, clock: FrozenClock) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    done_before = sample("caretime_jobs_finished_total", kind="tests.signal", outcome="done")
    late_before = sample("caretime_job_lateness_seconds_count")
    await make_job(runtime, kind="tests.signal", payload={"name": "m"})
    await make_job(runtime, kind="tests.signal", payload={"name": "n"})
    clock.advance(timedelta(seconds=2))
    await Dispatcher(runtime).run_pending()
    done = sample("caretime_jobs_finished_total", kind="tests.signal", outcome="done")
    assert done - done_before == 2
    assert sample("caretime_job_lateness_seconds_count") - late_before == 2
    await Dispatcher(runtime).beat()
    assert sample("caretime_jobs", status="queued") == 0


@pytest.mark.postgres_only
async def test_listener_hears_commits_from_other_processes(
    runtime: Runtime, settings: Settings
) -> None:
    waker = Waker()
    signal = waker.subscribe()
    listener = PostgresListener(settings.database_url, waker)
    stop = asyncio.Event()
    listening = asyncio.create_task(listener.run(stop))
    try:
        async with asyncio.timeout(WAIT):
            await listener.listening.wait()
        signal.clear()
        async with transaction(runtime.sessions) as session:
            await enqueue(session, "tests.signal", {"name": "x"}, run_at=runtime.clock.now())
        async with asyncio.timeout(WAIT):
            await signal.wait()
    finally:
        stop.set()
        await listening


async def test_overlapping_run_pending_calls_run_each_job_once(runtime: Runtime) -> None:
    for n in range(40):
        await make_job(runtime, kind="tests.follow_up_then_fail_once", payload={"n": n})
    dispatcher = Dispatcher(runtime, concurrency=4)
    await asyncio.gather(dispatcher.run_pending(), dispatcher.run_pending())
    assert await _count_jobs(runtime, Job.kind == "tests.signal") == 40
    assert await _count_jobs(runtime, Job.attempts != 1) == 0
