"""Many worker processes on one PostgreSQL database: shared work, each effect once, and
recovery from a worker killed mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.db import transaction
from caretime.dispatch.models import DispatchWorker, Job
from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.runtime import Runtime
from tests.dispatch.worker_process import EFFECTS_TABLE

pytestmark = pytest.mark.postgres_only
REPO = Path(__file__).resolve().parents[2]
WAIT = 120.0  # seconds: a bound on waiting, never an assertion
# Enough that all three processes claim, run and complete jobs side by side for many turns of
# their loops (24 handlers at once; the test asserts the work was shared). 5,000 jobs took
# over a minute of a 2-core CI machine for the same races.
JOBS = 2000


class Workers:
    """Worker processes launched with `sys.executable`, all stopped at teardown."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.dispatch.worker_process", self.url, *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return [process.wait(timeout=60) for process in self.processes]


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(settings.database_url, tmp_path)
    yield pool
    for process in pool.processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def effects(runtime: Runtime, clock: FrozenClock) -> None:
    # Worker processes run on the system clock; jobs are stamped on it too (a creation time
    # months in the past would put retries beyond the retry policy's max age).
    clock.set(datetime.now(UTC))
    async with transaction(runtime.sessions) as session:
        await session.execute(text(EFFECTS_TABLE))
        await session.execute(text("TRUNCATE dispatch_test_effects"))


async def _scalar(runtime: Runtime, query: object) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def _wait_until(runtime: Runtime, query: object, expected: int) -> None:
    async with asyncio.timeout(WAIT):
        while await _scalar(runtime, query) != expected:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.1)


async def _enqueue(runtime: Runtime, kind: str, count: int) -> None:
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        await enqueue_many(session, [NewJob(kind, {"n": i}, now) for i in range(count)])


async def test_three_processes_drain_2000_jobs_each_effect_once(
    runtime: Runtime, workers: Workers, effects: None
) -> None:
    for _ in range(3):
        workers.start("--concurrency", "8")
    await _wait_until(runtime, select(func.count()).select_from(DispatchWorker), 3)
    await _enqueue(runtime, "tests.effect", JOBS)
    await _wait_until(runtime, select(func.count()).where(Job.status == "done"), JOBS)
    async with runtime.sessions() as session:
        runs = (await session.execute(text("SELECT runs FROM dispatch_test_effects"))).scalars()
        assert sorted(set(runs)) == [1]
        count = await session.scalar(text("SELECT count(*) FROM dispatch_test_effects"))
        pids = await session.scalar(
            text("SELECT count(DISTINCT worker_pid) FROM dispatch_test_effects")
        )
    assert count == JOBS
    assert pids is not None
    assert pids >= 2  # the work was shared, not drained by whoever woke first
    assert workers.stop_all() == [0, 0, 0]
    assert await _scalar(runtime, select(func.count()).select_from(DispatchWorker)) == 0


async def test_jobs_of_a_killed_worker_complete_elsewhere_after_its_lease(
    runtime: Runtime, workers: Workers, effects: None
) -> None:
    doomed = workers.start("--concurrency", "8", "--lease", "2")
    await _enqueue(runtime, "tests.hang_on_first_attempt", 8)
    await _wait_until(runtime, select(func.count()).where(Job.status == "running"), 8)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    workers.start("--concurrency", "8", "--lease", "2")
    await _wait_until(runtime, select(func.count()).where(Job.status == "done"), 8)
    async with runtime.sessions() as session:
        attempts = (await session.scalars(select(Job.attempts))).all()
        runs = (await session.execute(text("SELECT runs FROM dispatch_test_effects"))).scalars()
        assert list(runs) == [1] * 8
    assert attempts == [2] * 8


async def test_a_new_worker_on_the_same_machine_takes_over_a_killed_ones_jobs_at_once(
    runtime: Runtime, workers: Workers, effects: None
) -> None:
    # A lease of ten minutes: the jobs come back within the wait bound only because the new
    # process sees that their worker's process is gone.
    doomed = workers.start("--concurrency", "8", "--lease", "600")
    await _enqueue(runtime, "tests.hang_on_first_attempt", 8)
    await _wait_until(runtime, select(func.count()).where(Job.status == "running"), 8)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    workers.start("--concurrency", "8", "--lease", "600")
    await _wait_until(runtime, select(func.count()).where(Job.status == "done"), 8)
    async with runtime.sessions() as session:
        runs = (await session.execute(text("SELECT runs FROM dispatch_test_effects"))).scalars()
        assert list(runs) == [1] * 8
        workers_left = await session.scalar(select(func.count()).select_from(DispatchWorker))
    assert workers_left == 1  # the dead worker's row is gone too
