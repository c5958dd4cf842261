"""Retries as data: backoff, handler-chosen delays, permanent failures, dead letters, and
retrying by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from caretime.db import transaction
from caretime.dispatch import JobContext, PermanentFailure, RetryLater, job_handler
from caretime.dispatch.errors import JobStateConflict
from caretime.dispatch.operations import cancel_job, list_jobs, retry_job
from caretime.dispatch.retry import RetryPolicy
from caretime.dispatch.worker import Dispatcher, advance_and_run
from caretime.runtime import Runtime
from tests.dispatch.support import load_job, make_job

ATTEMPTS: list[int] = []
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(base_delay=timedelta(seconds=10), factor=3, jitter=0, max_age=None)


@pytest.fixture(autouse=True)
def _clear() -> None:
    ATTEMPTS.clear()


@job_handler("tests.always_fails", retry=NO_JITTER)
async def always_fails(ctx: JobContext, payload: dict[str, Any]) -> None:
    ATTEMPTS.append(ctx.job.attempts)
    raise ConnectionError("provider unreachable")


@job_handler("tests.retry_later")
async def retry_later(ctx: JobContext, payload: dict[str, Any]) -> None:
    ATTEMPTS.append(ctx.job.attempts)
    if ctx.job.attempts == 1:
        if "at" in payload:
            raise RetryLater("outside the calling window", at=datetime.fromisoformat(payload["at"]))
        raise RetryLater("busy", delay=timedelta(minutes=payload["minutes"]))


@job_handler("tests.permanent")
async def permanent(ctx: JobContext, payload: dict[str, Any]) -> None:
    ATTEMPTS.append(ctx.job.attempts)
    raise PermanentFailure("number is not mobile")


@pytest.mark.parametrize(
    ("attempts", "max_attempts", "age", "expected"),
    [
        (1, 5, timedelta(0), timedelta(seconds=10)),
        (2, 5, timedelta(0), timedelta(seconds=30)),
        (3, 5, timedelta(0), timedelta(seconds=90)),
        (5, 5, timedelta(0), None),  # attempts spent
        (1, 1, timedelta(0), None),
    ],
)
def test_backoff_grows_exponentially_until_attempts_are_spent(
    attempts: int, max_attempts: int, age: timedelta, expected: timedelta | None
) -> None:
    run_at = NO_JITTER.next_run_at(
        attempts=attempts, max_attempts=max_attempts, created_at=NOON - age, now=NOON
    )
    assert run_at == (None if expected is None else NOON + expected)


HALF_HOUR_FOR_AN_HOUR = RetryPolicy(
    base_delay=timedelta(minutes=30), jitter=0, max_age=timedelta(hours=1)
)
CAPPED_AT_FIVE_MINUTES = RetryPolicy(
    base_delay=timedelta(hours=1), max_delay=timedelta(minutes=5), jitter=0
)


@pytest.mark.parametrize(
    ("policy", "attempts", "age", "expected"),
    [
        (HALF_HOUR_FOR_AN_HOUR, 1, timedelta(0), timedelta(minutes=30)),
        (HALF_HOUR_FOR_AN_HOUR, 1, timedelta(minutes=45), None),  # would run past max age
        (CAPPED_AT_FIVE_MINUTES, 9, timedelta(0), timedelta(minutes=5)),
    ],
)
def test_max_age_gives_up_and_max_delay_caps(
    policy: RetryPolicy, attempts: int, age: timedelta, expected: timedelta | None
) -> None:
    run_at = policy.next_run_at(attempts=attempts, max_attempts=20, created_at=NOON - age, now=NOON)
    assert run_at == (None if expected is None else NOON + expected)


def test_jitter_stays_within_its_spread() -> None:
    policy = RetryPolicy(base_delay=timedelta(seconds=100), jitter=0.2)
    rng = random.Random(7)
    delays = {policy.delay_for(1, rng).total_seconds() for _ in range(200)}
    assert min(delays) >= 80
    assert max(delays) <= 120
    assert len(delays) > 1


async def test_failing_job_backs_off_then_dead_letters_with_its_error(runtime: Runtime) -> None:
    job = await make_job(runtime, kind="tests.always_fails", max_attempts=3)
    assert await Dispatcher(runtime).run_pending() == 1
    queued = await load_job(runtime, job.id)
    assert (queued.status, queued.attempts) == ("queued", 1)
    assert queued.run_at == runtime.clock.now() + timedelta(seconds=10)
    assert await advance_and_run(runtime, timedelta(seconds=9)) == 0
    assert await advance_and_run(runtime, timedelta(seconds=1)) == 1
    assert await advance_and_run(runtime, timedelta(seconds=29)) == 0
    assert await advance_and_run(runtime, timedelta(seconds=1)) == 1
    dead = await load_job(runtime, job.id)
    assert ATTEMPTS == [1, 2, 3]
    assert (dead.status, dead.attempts) == ("failed", 3)
    assert dead.last_error == "ConnectionError: provider unreachable"
    assert dead.finished_at == runtime.clock.now()
    assert await advance_and_run(runtime, timedelta(days=1)) == 0
    async with runtime.sessions() as session:
        assert [j.id for j in await list_jobs(session, status="failed")] == [job.id]


@pytest.mark.parametrize("payload", [{"minutes": 15}, {"at": "2026-03-02T15:15:00+00:00"}])
async def test_retry_later_sets_the_next_attempt_time(
    runtime: Runtime, payload: dict[str, Any]
) -> None:
    job = await make_job(runtime, kind="tests.retry_later", payload=payload)
    await Dispatcher(runtime).run_pending()
    waiting = await load_job(runtime, job.id)
    assert waiting.run_at == runtime.clock.now() + timedelta(minutes=15)
    assert waiting.last_error is not None
    assert await advance_and_run(runtime, timedelta(minutes=14, seconds=59)) == 0
    assert await advance_and_run(runtime, timedelta(seconds=1)) == 1
    assert (await load_job(runtime, job.id)).status == "done"
    assert ATTEMPTS == [1, 2]


async def test_permanent_failure_dead_letters_at_once(runtime: Runtime) -> None:
    job = await make_job(runtime, kind="tests.permanent", max_attempts=5)
    await Dispatcher(runtime).run_pending()
    failed = await load_job(runtime, job.id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error == "PermanentFailure: number is not mobile"


async def test_unknown_kind_is_retried_not_lost(runtime: Runtime) -> None:
    job = await make_job(runtime, kind="tests.nobody_handles_this")
    await Dispatcher(runtime).run_pending()
    retried = await load_job(runtime, job.id)
    assert retried.status == "queued"
    assert retried.last_error is not None
    assert "UnknownJobKind" in retried.last_error


async def test_manual_retry_runs_a_dead_job_again(runtime: Runtime) -> None:
    job = await make_job(runtime, kind="tests.permanent", max_attempts=2)
    await Dispatcher(runtime).run_pending()
    async with transaction(runtime.sessions) as session:
        retried = await retry_job(session, job.id)
        assert (retried.status, retried.attempts) == ("queued", 0)
    assert await Dispatcher(runtime).run_pending() == 1
    assert ATTEMPTS == [1, 1]
    assert (await load_job(runtime, job.id)).status == "failed"


async def test_manual_retry_refuses_live_jobs_and_taken_dedupe_keys(runtime: Runtime) -> None:
    live = await make_job(runtime, kind="tests.permanent", delay=timedelta(hours=1))
    with pytest.raises(JobStateConflict):
        async with transaction(runtime.sessions) as session:
            await retry_job(session, live.id)
    dead = await make_job(runtime, kind="tests.permanent", dedupe_key="k")
    await Dispatcher(runtime).run_pending()
    await make_job(runtime, kind="tests.permanent", dedupe_key="k", delay=timedelta(hours=1))
    with pytest.raises(JobStateConflict):
        async with transaction(runtime.sessions) as session:
            await retry_job(session, dead.id)


async def test_cancel_by_operator_only_while_queued(runtime: Runtime) -> None:
    job = await make_job(runtime, kind="tests.permanent", delay=timedelta(hours=1))
    async with transaction(runtime.sessions) as session:
        assert (await cancel_job(session, job.id)).status == "cancelled"
    with pytest.raises(JobStateConflict):
        async with transaction(runtime.sessions) as session:
            await cancel_job(session, job.id)
    assert await advance_and_run(runtime, timedelta(hours=2)) == 0
