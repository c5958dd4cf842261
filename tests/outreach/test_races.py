"""Concurrency on PostgreSQL: users cancel or move calls while dispatchers place them, and
clients post the same batch at once. Real transactions on real connections."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.errors import CaretimeError
from caretime.messaging.models import Message
from caretime.outreach import calls as call_service
from caretime.outreach.models import Call, CallAttempt
from caretime.runtime import Runtime
from caretime.tenancy.policy import CallingPolicy
from tests.conftest import LiveServer
from tests.outreach.support import make_items
from tests.support import TEST_API_KEY, bearer

pytestmark = pytest.mark.postgres_only
CALLS = 40


async def due_calls(client: httpx.AsyncClient, clock: FrozenClock) -> tuple[str, list[str]]:
    tenant_id = (await client.get("/tenants/me")).json()["id"]
    results = (await client.post("/schedule", json=make_items(count=CALLS))).json()
    clock.advance(timedelta(minutes=1))
    return tenant_id, [r["scheduled_task_id"] for r in results]


async def race(
    runtime: Runtime, call_ids: list[str], change: Callable[[str], Awaitable[object]]
) -> dict[str, bool]:
    """Dispatchers and user changes at once; returns, per call, whether the change won."""

    connections = asyncio.Semaphore(6)  # the PostgreSQL server is shared: stay small

    async def attempt(call_id: str) -> bool:
        try:
            async with connections:
                await change(call_id)
        except CaretimeError:
            return False
        return True

    dispatchers = [Dispatcher(runtime, batch_size=4, worker_id=f"w{i}") for i in range(3)]
    outcomes = await asyncio.gather(
        *(d.run_pending() for d in dispatchers), *(attempt(c) for c in call_ids)
    )
    return dict(zip(call_ids, outcomes[len(dispatchers) :], strict=True))


async def placed(runtime: Runtime, call_id: str) -> tuple[str, int, int]:
    async with runtime.sessions() as session:
        call = await session.get(Call, call_id)
        attempts = await session.scalar(
            select(func.count()).select_from(CallAttempt).where(CallAttempt.call_id == call_id)
        )
        messages = await session.scalar(
            select(func.count()).select_from(Message).where(
                Message.idempotency_key.like(f"outreach.call:{call_id}:%"))
        )  # fmt: skip
    assert call is not None
    return call.status, attempts or 0, messages or 0


async def test_cancel_racing_the_dispatchers_either_cancels_or_rings_never_both(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    tenant_id, call_ids = await due_calls(client, clock)

    async def cancel(call_id: str) -> None:
        async with transaction(runtime.sessions) as session:
            await call_service.cancel(session, tenant_id, call_id, now=clock.now())

    won = await race(runtime, call_ids, cancel)
    for call_id, cancelled in won.items():
        status, attempts, messages = await placed(runtime, call_id)
        expected = ("cancelled", 0, 0) if cancelled else ("dispatching", 1, 1)
        assert (status, attempts, messages) == expected, call_id


async def test_reschedule_racing_the_dispatchers_either_moves_or_rings_never_both(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    tenant_id, call_ids = await due_calls(client, clock)
    later = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)

    async def move(call_id: str) -> None:
        async with transaction(runtime.sessions) as session:
            await call_service.reschedule(
                session, tenant_id, CallingPolicy(), call_id, at=later, tz=None, now=clock.now()
            )

    won = await race(runtime, call_ids, move)
    for call_id, moved in won.items():
        status, attempts, messages = await placed(runtime, call_id)
        expected = ("scheduled", 0, 0) if moved else ("dispatching", 1, 1)
        assert (status, attempts, messages) == expected, call_id
    # Moved calls ring at their new time, once.
    clock.set(later)
    for dispatcher_run in range(2):
        await Dispatcher(runtime, worker_id=f"later{dispatcher_run}").run_pending()
    for call_id, moved in won.items():
        if moved:
            assert (await placed(runtime, call_id))[1:] == (1, 1)


async def test_the_same_batch_posted_concurrently_creates_calls_once(
    live_server: LiveServer,
) -> None:
    headers = {**bearer(TEST_API_KEY), "Idempotency-Key": "concurrent-batch"}
    async with httpx.AsyncClient(base_url=live_server.url, headers=headers, timeout=60) as http:
        responses = await asyncio.gather(
            *(http.post("/schedule", json=make_items(count=50)) for _ in range(6))
        )
        listed = (await http.get("/calls", params={"limit": 1000})).json()["items"]
    assert {r.status_code for r in responses} == {200}
    assert all(r.json() == responses[0].json() for r in responses)
    assert len(listed) == 50


async def test_concurrent_batches_with_distinct_keys_all_succeed(live_server: LiveServer) -> None:
    """Each batch's INSERT takes a key-share lock on its tenant's row before planning locks
    that row: an exclusive lock there deadlocked concurrent batches (issue 20.2)."""
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=bearer(TEST_API_KEY), timeout=120
    ) as http:
        # Use the key first: a key's first use in a minute writes its row, which would
        # serialise the batches below and hide the fault.
        assert (await http.get("/tenants/me")).status_code == 200
        responses = await asyncio.gather(
            *(
                http.post(
                    "/schedule",
                    json=make_items(count=5, exchange=200 + n),
                    headers={"Idempotency-Key": f"distinct-{n}"},
                )
                for n in range(20)
            )
        )
        listed = (await http.get("/calls", params={"limit": 1000})).json()["items"]
    assert [r.status_code for r in responses] == [200] * 20, [r.text[:200] for r in responses]
    assert all(item["status"] == "scheduled" for r in responses for item in r.json())
    assert len(listed) == 100
