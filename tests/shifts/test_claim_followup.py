"""A won claim commits first; the trail's assignment, the cancelled rounds and the filled
alert follow after the commit (a dispatch follow-up), once, even if the process dies in
between: then a worker does them when the follow-up's job falls due."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.dispatch.followups import BACKSTOP
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts.claims import CLAIMED, answer_offer
from caretime.shifts.models import Offer
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift

COORDINATOR = "+16175550111"


@pytest.fixture
async def offered(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> dict[str, str]:
    """A shift offered to c1 (its fan-out's later rounds queued), a coordinator who wants
    `filled` alerts."""
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="c1", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    alerts = [{"phone": COORDINATOR, "events": ["filled"]}]
    policy = {"shifts": {"alerts": alerts}}
    assert (await client.patch("/tenants/me/policy", json=policy)).status_code == 200
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    async with runtime.sessions() as session:
        offer = await session.scalar(select(Offer.id).where(Offer.caregiver_id == "c1"))
    assert offer is not None
    return {"tenant": tenant, "offer": offer}


async def _assigned_entries(client: httpx.AsyncClient) -> int:
    timeline = (await client.get("/shifts/s1/timeline")).json()["entries"]
    return [entry["kind"] for entry in timeline].count("assigned")


async def _filled_alerts(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(Message.id).where(Message.to_phone == COORDINATOR))
        return len(rows.all())


async def _follow_up_jobs(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Job.status).where(Job.kind == CLAIMED)))


async def test_the_follow_up_runs_right_after_the_claim_commits_and_only_then(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    offered: dict[str, str],
) -> None:
    reply = await client.post("/messages/inbound", json={"from": "+16172000001", "body": "yes"})
    assert reply.json()["action"] == "assigned"
    assert await _assigned_entries(client) == 1
    assert await _filled_alerts(runtime) == 1
    assert await _follow_up_jobs(runtime) == ["done"]
    shift = (await client.get("/shifts/s1")).json()
    assert shift["fanout"]["rounds"][1]["state"] == "skipped"  # the voice round is cancelled

    clock.advance(BACKSTOP + timedelta(seconds=1))
    await dispatcher.run_pending()  # its job was taken: nothing happens twice
    assert (await _assigned_entries(client), await _filled_alerts(runtime)) == (1, 1)


async def test_a_crash_between_the_claim_and_its_follow_up_loses_nothing(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    offered: dict[str, str],
) -> None:
    # The claim commits, and the process dies before the follow-up runs: committed by hand,
    # not by the transaction owner that would run it.
    async with runtime.sessions() as session, session.begin():
        won = await answer_offer(
            session, offered["tenant"], offered["offer"], "accept", now=clock.now()
        )
    assert won.action == "assigned"
    assert (await _assigned_entries(client), await _filled_alerts(runtime)) == (0, 0)
    assert await _follow_up_jobs(runtime) == ["queued"]

    clock.advance(BACKSTOP)
    await dispatcher.run_pending()
    assert (await _assigned_entries(client), await _filled_alerts(runtime)) == (1, 1)
    assert await _follow_up_jobs(runtime) == ["done"]
    shift = (await client.get("/shifts/s1")).json()
    assert shift["fanout"]["rounds"][1]["state"] == "skipped"
