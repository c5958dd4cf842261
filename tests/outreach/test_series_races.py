"""Recurring series under concurrency on PostgreSQL: wake-ups that come together plan one
occurrence, and a cancel racing the planner leaves nothing pending. Real transactions."""

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.outreach import series_actions
from caretime.outreach.models import Call, CallSeries
from caretime.runtime import Runtime

pytestmark = pytest.mark.postgres_only
WEEKLY = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;COUNT=8"
SERIES = 20


async def series_with_ended_occurrence(client: httpx.AsyncClient, phone: str) -> str:
    """A series whose first occurrence was just cancelled by hand: its next is due."""
    first = await client.post("/calls", json={"name": "A", "phone": phone, "recurrence": WEEKLY})
    assert first.status_code == 201, first.text
    assert (await client.delete(f"/calls/{first.json()['id']}")).status_code == 200
    return str(first.json()["series_id"])


async def pending_of(runtime: Runtime, series_id: str) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.series_id == series_id, Call.status == "scheduled")
        )
    return count or 0


async def test_wake_ups_at_once_plan_one_occurrence(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    tenant_id = (await client.get("/tenants/me")).json()["id"]
    series_id = await series_with_ended_occurrence(client, "212-555-0100")

    async def wake() -> None:
        async with transaction(runtime.sessions) as session:
            await series_actions.continue_series(session, tenant_id, series_id, now=clock.now())

    dispatchers = [Dispatcher(runtime, batch_size=4, worker_id=f"w{i}") for i in range(2)]
    await asyncio.gather(*(wake() for _ in range(6)), *(d.run_pending() for d in dispatchers))
    assert await pending_of(runtime, series_id) == 1
    async with runtime.sessions() as session:
        series = await session.get(CallSeries, series_id)
    assert series is not None
    assert (series.occurrences, series.skipped, series.status) == (2, 0, "active")


async def test_cancel_racing_the_next_occurrence_leaves_nothing_pending(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    tenant_id = (await client.get("/tenants/me")).json()["id"]
    ids = [await series_with_ended_occurrence(client, f"212-555-01{i:02d}") for i in range(SERIES)]
    connections = asyncio.Semaphore(6)  # the PostgreSQL server is shared: stay small

    async def cancel(series_id: str) -> None:
        async with connections, transaction(runtime.sessions) as session:
            await series_actions.cancel_series(session, tenant_id, series_id, now=clock.now())

    dispatchers = [Dispatcher(runtime, batch_size=2, worker_id=f"w{i}") for i in range(3)]
    await asyncio.gather(*(d.run_pending() for d in dispatchers), *(cancel(s) for s in ids))
    await Dispatcher(runtime, worker_id="after").run_pending()
    for series_id in ids:
        assert await pending_of(runtime, series_id) == 0, series_id
        async with runtime.sessions() as session:
            series = await session.get(CallSeries, series_id)
        assert series is not None
        assert series.status == "cancelled"
