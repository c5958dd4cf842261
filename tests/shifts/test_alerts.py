"""Coordinator alerts on a frozen clock: who is texted about what, once, and the timeline."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message
from caretime.runtime import Runtime
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone

EVERYTHING = "+16175550111"
TROUBLE = "+16175550122"


@pytest.fixture
async def watched(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> str:
    """Two RNs; one coordinator wants every alert, another the default set (not `filled`)."""
    tenant = await default_tenant_id(runtime)
    for n in (1, 2):
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    every = ["unfilled", "expired_unfilled", "dropped", "filled", "question", "overtime"]
    alerts = [{"phone": EVERYTHING, "events": every}, {"phone": "(617) 555-0122"}]
    response = await client.patch("/tenants/me/policy", json={"shifts": {"alerts": alerts}})
    assert response.status_code == 200, response.text
    assert response.json()["shifts"]["alerts"][1] == {
        "phone": TROUBLE,
        "events": ["unfilled", "expired_unfilled", "dropped", "question", "overtime"],
    }
    return tenant


async def _alerts(runtime: Runtime, to: str) -> list[str]:
    statement = select(Message.body).where(
        Message.to_phone == to, Message.related_kind == "shifts.alert"
    )
    async with runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(Message.created_at))).all())


async def _reply(client: httpx.AsyncClient, n: int, body: str) -> str:
    response = await client.post("/messages/inbound", json={"from": phone(n), "body": body})
    assert response.status_code == 200, response.text
    action: str = response.json()["action"]
    return action


async def test_fill_and_call_out_are_told_to_who_wants_them(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, watched: str
) -> None:
    await client.post("/shifts/s1/fanout")
    assert await _reply(client, 1, "yes") == "assigned"
    assert await _reply(client, 1, "no sorry, my car broke down") == "dropped"
    await dispatcher.run_pending()
    what = "the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard (shift s1)"
    assert sorted(await _alerts(runtime, EVERYTHING)) == [
        f"Call-out: Caregiver 1 (c1) is off {what} (the caregiver replied no). Re-fill started.",
        f"Filled: {what} is taken by Caregiver 1 (c1).",
    ]
    assert await _alerts(runtime, TROUBLE) == [
        f"Call-out: Caregiver 1 (c1) is off {what} (the caregiver replied no). Re-fill started."
    ]
    timeline = (await client.get("/shifts/s1/timeline")).json()["entries"]
    assert [e["details"]["alert"] for e in timeline if e["kind"] == "alert"] == [
        "filled",
        "dropped",
    ]


async def test_still_open_after_the_ladder_then_near_the_start_then_expired(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    watched: str,
) -> None:
    await client.post("/shifts/s1/fanout")
    clock.advance(timedelta(minutes=20) - timedelta(microseconds=1))  # voice at 10, +10
    await dispatcher.run_pending()
    assert await _alerts(runtime, TROUBLE) == []
    clock.advance(timedelta(microseconds=1))
    await dispatcher.run_pending()
    assert len(await _alerts(runtime, TROUBLE)) == 1
    assert "Every round has gone out" in (await _alerts(runtime, TROUBLE))[0]
    clock.advance(timedelta(hours=2) - timedelta(minutes=20))  # two hours before the start
    await dispatcher.run_pending()
    assert "starts soon" in (await _alerts(runtime, TROUBLE))[-1]
    clock.advance(timedelta(hours=2))
    await dispatcher.run_pending()
    assert (await _alerts(runtime, TROUBLE))[-1] == (
        "Expired unfilled: the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard (shift s1) "
        "started with nobody on it."
    )
    assert len(await _alerts(runtime, TROUBLE)) == 3


async def test_a_filled_shift_raises_no_unfilled_alerts(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    watched: str,
) -> None:
    await client.post("/shifts/s1/fanout")
    assert await _reply(client, 2, "yes") == "assigned"
    clock.advance(timedelta(hours=5))
    await dispatcher.run_pending()
    assert await _alerts(runtime, TROUBLE) == []


async def test_an_undialable_coordinator_phone_is_refused_with_its_place(
    client: httpx.AsyncClient, watched: str
) -> None:
    bad = {"shifts": {"alerts": [{"phone": "12", "events": ["dropped"]}]}}
    response = await client.patch("/tenants/me/policy", json=bad)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"][-2:] == [0, "phone"] or "phone" in error["loc"]
    unknown = {"shifts": {"alerts": [{"phone": TROUBLE, "events": ["lunch"]}]}}
    assert (await client.patch("/tenants/me/policy", json=unknown)).status_code == 422
