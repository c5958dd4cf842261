"""Calls due in one minute share one dispatch job: what a user sees stays as it was (every
call rings once at its time, a cancelled one never, a moved one at its new time), on both
databases; on PostgreSQL, several workers running one minute at once place each call once."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.dispatch.queue import enqueue
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.outreach.models import Call, CallAttempt
from caretime.outreach.writing import PLACE_MINUTE
from caretime.runtime import Runtime
from tests.outreach.support import make_items, set_calling_policy

STATUSES = ("queued", "running", "done", "failed")


async def create(client: httpx.AsyncClient, phone: str, scheduled: str) -> str:
    body = {"name": "Ann", "phone": phone, "scheduled": scheduled}
    response = await client.post("/calls", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def placed(runtime: Runtime, call_id: str) -> tuple[str, int, int]:
    """The call's status, its attempts and the voice messages handed to the provider."""
    async with runtime.sessions() as session:
        call = await session.get(Call, call_id)
        attempts = await session.scalar(
            select(func.count()).select_from(CallAttempt).where(CallAttempt.call_id == call_id)
        )
        sent = await session.scalar(
            select(func.count()).select_from(Message).where(
                Message.idempotency_key.like(f"outreach.call:{call_id}:%"),
                Message.provider_id.is_not(None))
        )  # fmt: skip
    assert call is not None
    return call.status, attempts or 0, sent or 0


async def minute_jobs(runtime: Runtime, *statuses: str) -> list[Job]:
    async with runtime.sessions() as session:
        found = await session.scalars(
            select(Job).where(Job.kind == PLACE_MINUTE, Job.status.in_(statuses)).order_by(Job.id)
        )
        return list(found)


async def test_a_batch_writes_one_job_per_due_minute_and_every_call_rings_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    await set_calling_policy(client, max_calls_per_minute=20)
    results = (await client.post("/schedule", json=make_items(count=50))).json()
    due = sorted({r["scheduled"] for r in results})
    minutes = {at[:16] for at in due}
    assert len(minutes) == 3  # 20 + 20 + 10 calls
    assert len(await minute_jobs(runtime, "queued")) == 3
    clock.set(datetime.fromisoformat(due[-1]) + timedelta(seconds=1))
    await dispatcher.run_pending()
    for result in results:
        assert await placed(runtime, result["scheduled_task_id"]) == ("dispatching", 1, 1)


async def test_each_call_of_a_minute_rings_at_its_own_moment(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    late = await create(client, "212-555-0101", "2026-03-02T15:30:40Z")
    early = await create(client, "212-555-0102", "2026-03-02T15:30:10Z")
    (job,) = await minute_jobs(runtime, "queued")
    assert job.run_at == datetime(2026, 3, 2, 15, 30, 10, tzinfo=UTC)  # the earlier call's
    clock.set(datetime(2026, 3, 2, 15, 30, 10, tzinfo=UTC))
    await dispatcher.run_pending()
    assert (await placed(runtime, early))[0] == "dispatching"
    assert (await placed(runtime, late))[0] == "scheduled"
    (again,) = await minute_jobs(runtime, "queued")
    assert (again.id, again.run_at) == (job.id, datetime(2026, 3, 2, 15, 30, 40, tzinfo=UTC))
    clock.set(datetime(2026, 3, 2, 15, 30, 40, tzinfo=UTC))
    await dispatcher.run_pending()
    assert await placed(runtime, late) == ("dispatching", 1, 1)
    assert await minute_jobs(runtime, "queued", "running") == []


async def test_a_cancelled_call_is_skipped_and_a_moved_one_rings_in_its_new_minute(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    stays = await create(client, "212-555-0101", "2026-03-02T15:30:00Z")
    cancelled = await create(client, "212-555-0102", "2026-03-02T15:30:20Z")
    moved = await create(client, "212-555-0103", "2026-03-02T15:30:30Z")
    assert (await client.delete(f"/calls/{cancelled}")).status_code == 200
    later = {"scheduled": "2026-03-02T16:45:00Z"}
    assert (await client.patch(f"/calls/{moved}", json=later)).status_code == 200
    clock.set(datetime(2026, 3, 2, 15, 31, tzinfo=UTC))
    await dispatcher.run_pending()
    assert await placed(runtime, stays) == ("dispatching", 1, 1)
    assert await placed(runtime, cancelled) == ("cancelled", 0, 0)
    assert await placed(runtime, moved) == ("scheduled", 0, 0)
    clock.set(datetime(2026, 3, 2, 16, 45, tzinfo=UTC))
    await dispatcher.run_pending()
    assert await placed(runtime, moved) == ("dispatching", 1, 1)


async def test_a_call_moved_into_a_waiting_minute_pulls_its_job_forward(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    waiting = await create(client, "212-555-0101", "2026-03-02T15:30:50Z")
    moved = await create(client, "212-555-0102", "2026-03-02T17:00:00Z")
    sooner = {"scheduled": "2026-03-02T15:30:05Z"}
    assert (await client.patch(f"/calls/{moved}", json=sooner)).status_code == 200
    clock.set(datetime(2026, 3, 2, 15, 30, 5, tzinfo=UTC))
    await dispatcher.run_pending()
    assert await placed(runtime, moved) == ("dispatching", 1, 1)
    assert (await placed(runtime, waiting))[0] == "scheduled"


@pytest.mark.postgres_only
async def test_workers_racing_on_one_minute_place_each_call_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    """Three runs of one minute at once (two extra job rows for it, as a worker that lost its
    lease would be) on three dispatchers: each call is claimed by one of them."""
    await set_calling_policy(client, max_calls_per_minute=60)
    results = (await client.post("/schedule", json=make_items(count=40))).json()
    (job,) = await minute_jobs(runtime, "queued")
    async with transaction(runtime.sessions) as session:
        for _ in range(2):
            await enqueue(
                session, PLACE_MINUTE, job.payload, run_at=job.run_at, tenant_id=job.tenant_id
            )
    clock.advance(timedelta(minutes=2))
    dispatchers = [Dispatcher(runtime, batch_size=1, worker_id=f"w{i}") for i in range(3)]
    await asyncio.gather(*(d.run_pending() for d in dispatchers))
    # No run met a call another had started (the attempt's unique number would refuse it).
    assert [job.status for job in await minute_jobs(runtime, *STATUSES)] == ["done"] * 3
    for result in results:
        assert await placed(runtime, result["scheduled_task_id"]) == ("dispatching", 1, 1)
