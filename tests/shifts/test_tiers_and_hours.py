"""Tiers and waves (preferred caregivers hear first), and the overtime guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts.overtime import week_of
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone

WAVES = [
    {"channel": "sms", "after": "0m", "tiers": [1]},
    {"channel": "sms", "after": "5m", "tiers": [1, 2]},
    {"channel": "voice", "after": "10m"},
]


async def _offers(runtime: Runtime) -> list[tuple[str, str]]:
    statement = select(Message.to_phone, Message.channel).where(
        Message.related_kind == "shifts.offer"
    )
    async with runtime.sessions() as session:
        return sorted((to, channel) for to, channel in await session.execute(statement))


async def test_tiers_hear_in_order_and_waves_do_not_repeat(
    app: FastAPI,
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
) -> None:
    tenant = await default_tenant_id(runtime)
    policy = await client.patch("/tenants/me/policy", json={"shifts": {"escalation": WAVES}})
    assert policy.status_code == 200, policy.text
    for n, cid, tier in [(1, "pref", 1), (2, "second", 2), (3, "untiered", None)]:
        await make_caregiver(runtime, tenant_id=tenant, id=cid, roles=["RN"], n=n)
        if tier:
            await client.patch(f"/caregivers/{cid}", json={"tier": tier})
    await make_shift(runtime, tenant_id=tenant, id="s1")
    before = (await client.get("/shifts/s1/candidates")).json()["items"]
    reasons = {c["caregiver_id"]: c["reasons"] for c in before}
    assert reasons["second"] == ["tier 2: not in round 1 (tiers [1])"]
    assert reasons["pref"] == []

    await client.post("/shifts/s1/fanout")
    assert await _offers(runtime) == [(phone(1), "sms")]
    clock.advance(timedelta(minutes=5))
    await dispatcher.run_pending()
    assert await _offers(runtime) == [(phone(1), "sms"), (phone(2), "sms")]
    clock.advance(timedelta(minutes=5))
    await dispatcher.run_pending()
    assert await _offers(runtime) == [
        (phone(1), "sms"),
        (phone(1), "voice"),
        (phone(2), "sms"),
        (phone(2), "voice"),
        (phone(3), "voice"),
    ]


@pytest.mark.parametrize("tiers", [[0], [], [1, 10]])
async def test_bad_tiers_are_refused(
    app: FastAPI, client: httpx.AsyncClient, tiers: list[int]
) -> None:
    rounds = [{"channel": "sms", "after": "0m", "tiers": tiers}]
    response = await client.patch("/tenants/me/policy", json={"shifts": {"escalation": rounds}})
    assert response.status_code == 422
    assert "tiers" in str(response.json()["errors"][0]["loc"])


@pytest.fixture
async def week(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> str:
    """capped (12 h a week) already holds an 8-hour shift this week; free has no limit."""
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="capped", roles=["RN"], n=1)
    await make_caregiver(runtime, tenant_id=tenant, id="free", roles=["RN"], n=2)
    assert (await client.patch("/caregivers/capped", json={"max_weekly_hours": 12})).json()[
        "max_weekly_hours"
    ] == 12
    await make_shift(runtime, tenant_id=tenant, id="held", starts_in=timedelta(hours=4))
    await client.post("/shifts/held/fanout")
    reply = {"from": phone(1), "body": "yes", "shift_id": "held"}
    assert (await client.post("/messages/inbound", json=reply)).json()["action"] == "assigned"
    return tenant


async def test_a_caregiver_over_weekly_hours_is_not_offered(
    runtime: Runtime, client: httpx.AsyncClient, week: str
) -> None:
    # Mon Mar 2, 15:00 UTC now; this week runs Sun Mar 1 to Sat Mar 7 (New York).
    await make_shift(runtime, tenant_id=week, id="thu", starts_in=timedelta(days=3))
    await make_shift(runtime, tenant_id=week, id="next-week", starts_in=timedelta(days=7))
    thu = (await client.post("/shifts/thu/fanout")).json()
    assert thu["offers"] == 1  # free only
    reasons = {
        c["caregiver_id"]: c["reasons"]
        for c in (await client.get("/shifts/thu/candidates")).json()["items"]
    }
    assert reasons == {"capped": ["over weekly hours"], "free": []}
    assert (await client.post("/shifts/next-week/fanout")).json()["offers"] == 2


async def test_a_yes_that_would_go_over_is_refused_and_the_coordinator_told(
    runtime: Runtime, client: httpx.AsyncClient, app: FastAPI
) -> None:
    tenant = await default_tenant_id(runtime)
    alerts = {"shifts": {"alerts": [{"phone": "+16175550100", "events": ["overtime"]}]}}
    assert (await client.patch("/tenants/me/policy", json=alerts)).status_code == 200
    await make_caregiver(runtime, tenant_id=tenant, id="capped", roles=["RN"], n=1)
    await client.patch("/caregivers/capped", json={"max_weekly_hours": 12})
    await make_shift(runtime, tenant_id=tenant, id="a", starts_in=timedelta(hours=4))
    await make_shift(runtime, tenant_id=tenant, id="b", starts_in=timedelta(hours=30))
    await client.post("/shifts/a/fanout")
    await client.post("/shifts/b/fanout")  # offered while she had no hours yet
    yes_a = {"from": phone(1), "body": "yes", "shift_id": "a"}
    assert (await client.post("/messages/inbound", json=yes_a)).json()["action"] == "assigned"
    yes_b = {"from": phone(1), "body": "yes", "shift_id": "b"}
    refused = (await client.post("/messages/inbound", json=yes_b)).json()
    assert (refused["action"], refused["reason"]) == ("unavailable", "over weekly hours")
    async with runtime.sessions() as session:
        bodies = set((await session.scalars(select(Message.body))).all())
    assert "This would put you over your weekly hours; your coordinator has been told." in bodies
    assert any(b.startswith("Over hours: Caregiver 1 (capped) said yes") for b in bodies)
    assert (await client.get("/shifts/b")).json()["status"] == "open"


@pytest.mark.parametrize(
    ("moment", "starts", "start", "hours"),
    [
        (datetime(2026, 3, 2, 15, tzinfo=UTC), "sun", datetime(2026, 3, 1, 5, tzinfo=UTC), 168),
        (datetime(2026, 3, 1, 4, 59, tzinfo=UTC), "sun", datetime(2026, 2, 22, 5, tzinfo=UTC), 168),
        (datetime(2026, 3, 10, 12, tzinfo=UTC), "sun", datetime(2026, 3, 8, 5, tzinfo=UTC), 167),
        (datetime(2026, 11, 2, 12, tzinfo=UTC), "mon", datetime(2026, 11, 2, 5, tzinfo=UTC), 168),
        (datetime(2026, 10, 30, 12, tzinfo=UTC), "mon", datetime(2026, 10, 26, 4, tzinfo=UTC), 169),
    ],
)
def test_weeks_start_at_local_midnight_and_bend_around_dst(
    moment: datetime, starts: str, start: datetime, hours: int
) -> None:
    found_start, found_end = week_of(moment, "America/New_York", starts)  # type: ignore[arg-type]
    assert (found_start, found_end - found_start) == (start, timedelta(hours=hours))
