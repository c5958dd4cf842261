"""Races on PostgreSQL, for real: concurrent HTTP accepts, and concurrent worker processes."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.db import transaction
from caretime.dispatch.registry import JobContext, JobInfo, handlers
from caretime.dispatch.worker import Dispatcher
from caretime.models import import_all_handlers
from caretime.runtime import Runtime
from tests.conftest import LiveServer
from tests.shifts.support import (
    NO_QUIET_HOURS,
    default_tenant_id,
    make_caregivers,
    make_shift,
    offer_messages,
    phone,
)
from tests.support import TEST_API_KEY, bearer

pytestmark = pytest.mark.postgres_only

ACCEPTORS = 50
CALLED = 100


async def test_fifty_simultaneous_yeses_assign_the_shift_once(live_server: LiveServer) -> None:
    limits = httpx.Limits(max_connections=ACCEPTORS)
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=bearer(TEST_API_KEY), limits=limits, timeout=60
    ) as http:
        assert (await http.patch("/tenants/me/policy", json=NO_QUIET_HOURS)).status_code == 200
        created = await asyncio.gather(
            *(
                http.post(
                    "/caregivers",
                    json={"id": f"c{n}", "name": f"N{n}", "phone": phone(n), "roles": ["CNA"]},
                )
                for n in range(ACCEPTORS)
            )
        )
        assert {r.status_code for r in created} == {201}
        start = datetime.now(UTC) + timedelta(hours=4)
        shift = {
            "id": "race",
            "role_required": "CNA",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=8)).isoformat(),
        }
        assert (await http.post("/shifts", json=shift)).status_code == 201
        assert (await http.post("/shifts/race/fanout")).json()["offers"] == ACCEPTORS

        async def accept(n: int) -> dict[str, Any]:
            reply = await http.post("/messages/inbound", json={"from": phone(n), "body": "yes"})
            assert reply.status_code == 200, reply.text
            result: dict[str, Any] = reply.json()
            return result

        results = await asyncio.gather(*(accept(n) for n in range(ACCEPTORS)))
        final = (await http.get("/shifts/race")).json()

    actions = Counter(r["action"] for r in results)
    assert actions == {"assigned": 1, "already_filled": ACCEPTORS - 1}
    [winner] = [n for n, r in enumerate(results) if r["action"] == "assigned"]
    assert (final["status"], final["assigned_caregiver_id"]) == ("filled", f"c{winner}")


def _escalate_in_own_process(
    url: str, at: datetime, tenant_id: str, shift_id: str, barrier: Any
) -> None:
    asyncio.run(_escalate(url, at, tenant_id, shift_id, barrier))


async def _escalate(url: str, at: datetime, tenant_id: str, shift_id: str, barrier: Any) -> None:
    """What a worker does with a claimed `shifts.escalate` job: run the handler and commit."""
    runtime = Runtime.build(Settings(env="test", database_url=url, workers=0), FrozenClock(at))
    import_all_handlers()
    info = JobInfo(0, "shifts.escalate", tenant_id, 1, 5, at, at)
    try:
        barrier.wait()
        async with transaction(runtime.sessions) as session:
            handler = handlers.get("shifts.escalate")
            await handler(JobContext(session, runtime, info), {"shift_id": shift_id, "round": 2})
    finally:
        await runtime.close()


async def test_two_worker_processes_escalating_at_once_call_each_caregiver_once(
    app: object,
    runtime: Runtime,
    settings: Settings,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
) -> None:
    tenant = await default_tenant_id(runtime)
    await make_caregivers(runtime, tenant_id=tenant, count=CALLED, roles=["RN"])
    await make_shift(runtime, tenant_id=tenant, id="s1")
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    round_two = clock.now() + timedelta(minutes=10)

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(
            target=_escalate_in_own_process,
            args=(settings.database_url, round_two, tenant, "s1", barrier),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.join, 120)
    assert [w.exitcode for w in workers] == [0, 0]

    # The real job, due now, runs too (a third delivery): still nobody is called twice.
    clock.set(round_two)
    await dispatcher.run_pending()
    calls = Counter(m.to_phone for m in await offer_messages(runtime, channel="voice"))
    assert len(calls) == CALLED
    assert set(calls.values()) == {1}
    state = (await client.get("/shifts/s1")).json()["fanout"]
    assert state["rounds"][1]["offers"] == CALLED


RIVALS = 20
DROP_RACES = 4


async def test_yeses_racing_a_drop_never_leave_two_assignees_or_none(
    live_server: LiveServer,
) -> None:
    """The assignee texts "no" while 20 others text "yes", over real HTTP, several times: the
    shift ends filled by exactly one of the rivals, or open with nobody; never anything else."""
    limits = httpx.Limits(max_connections=RIVALS + 1)
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=bearer(TEST_API_KEY), limits=limits, timeout=60
    ) as http:
        assert (await http.patch("/tenants/me/policy", json=NO_QUIET_HOURS)).status_code == 200
        for n in range(RIVALS + 1):
            caregiver = {"id": f"c{n}", "name": f"N{n}", "phone": phone(n), "roles": ["CNA"]}
            assert (await http.post("/caregivers", json=caregiver)).status_code == 201
        for race in range(DROP_RACES):
            await _race_one_drop(http, f"race{race}", days=race + 1)


async def _race_one_drop(http: httpx.AsyncClient, shift_id: str, *, days: int) -> None:
    start = datetime.now(UTC) + timedelta(days=days)
    shift = {
        "id": shift_id,
        "role_required": "CNA",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=8)).isoformat(),
    }
    assert (await http.post("/shifts", json=shift)).status_code == 201
    assert (await http.post(f"/shifts/{shift_id}/fanout")).status_code == 202

    async def reply(n: int, body: str) -> dict[str, Any]:
        message = {"from": phone(n), "body": body, "shift_id": shift_id}
        response = await http.post("/messages/inbound", json=message)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert (await reply(0, "yes"))["action"] == "assigned"
    drop, *yeses = await asyncio.gather(
        reply(0, "sorry no"), *(reply(n, "yes") for n in range(1, RIVALS + 1))
    )
    final = (await http.get(f"/shifts/{shift_id}")).json()
    assert drop["action"] == "dropped"
    winners = [n for n, r in enumerate(yeses, start=1) if r["action"] == "assigned"]
    assert len(winners) <= 1
    assert {r["action"] for r in yeses} <= {"assigned", "already_filled"}
    if winners:
        assert (final["status"], final["assigned_caregiver_id"]) == ("filled", f"c{winners[0]}")
    else:
        assert (final["status"], final["assigned_caregiver_id"]) == ("open", None)
