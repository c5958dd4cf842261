"""Fan-out and escalation on a frozen clock: who is contacted, when, and never twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.app import create_app
from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from caretime.shifts.service import ESCALATE
from tests.shifts.support import (
    default_tenant_id,
    make_caregiver,
    make_shift,
    offer_messages,
    phone,
    phones_messaged,
)
from tests.support import bearer, make_tenant

TEN_MINUTES = timedelta(minutes=10)


@pytest.fixture
async def tenant(app: FastAPI, runtime: Runtime) -> str:
    return await default_tenant_id(runtime)


@pytest.fixture
async def staffed(runtime: Runtime, tenant: str) -> str:
    """Three RNs, two LPNs, one inactive RN; an RN shift s1 starting in four hours."""
    for n, roles, active in [
        (1, ["RN"], True),
        (2, ["RN", "LPN"], True),
        (3, ["RN"], True),
        (4, ["LPN"], True),
        (5, ["CNA", "LPN"], True),
        (6, ["RN"], False),
    ]:
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=roles, n=n, active=active)
    return await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard", notes="door 4")


async def _fanout(client: httpx.AsyncClient, shift_id: str = "s1") -> httpx.Response:
    return await client.post(f"/shifts/{shift_id}/fanout")


async def _reply(client: httpx.AsyncClient, n: int, body: str, **hint: str) -> dict[str, str]:
    response = await client.post("/messages/inbound", json={"from": phone(n), "body": body, **hint})
    assert response.status_code == 200, response.text
    result: dict[str, str] = response.json()
    return result


RN_PHONES = [phone(1), phone(2), phone(3)]


async def test_only_active_caregivers_with_the_role_get_the_sms(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    response = await _fanout(client)
    assert response.status_code == 202, response.text
    state = response.json()
    assert state["offers"] == 3
    assert state["current_round"] == 1
    assert [r["state"] for r in state["rounds"]] == ["sent", "scheduled"]
    assert state["next_round_at"] == "2026-03-02T15:10:00Z"
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="sms") == RN_PHONES


async def test_offer_text_says_what_when_where_and_how_to_answer_but_no_notes(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    await _fanout(client)
    await dispatcher.run_pending()
    body = (await offer_messages(runtime))[0].body
    assert body == (
        "Open RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard. "
        "Reply YES to take it or NO to pass."
    )


async def test_voice_round_exactly_at_ten_minutes_to_non_decliners(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    staffed: str,
) -> None:
    await _fanout(client)
    await dispatcher.run_pending()
    assert (await _reply(client, 3, "no thanks"))["action"] == "declined"
    clock.advance(TEN_MINUTES - timedelta(microseconds=1))
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="voice") == []
    clock.advance(timedelta(microseconds=1))
    await dispatcher.run_pending()
    calls = await offer_messages(runtime, channel="voice")
    assert sorted(c.to_phone for c in calls) == [phone(1), phone(2)]
    assert {c.sent_at for c in calls} == {clock.now()}
    state = (await client.get("/shifts/s1")).json()["fanout"]
    assert (state["current_round"], state["declined"], state["offers"]) == (2, 1, 5)


async def test_no_voice_round_when_claimed_at_nine_minutes(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    staffed: str,
) -> None:
    await _fanout(client)
    await dispatcher.run_pending()
    clock.advance(timedelta(minutes=9))
    result = await _reply(client, 2, "Yes I can take it")
    assert result == {**result, "intent": "accept", "action": "assigned", "shift_id": "s1"}
    clock.advance(timedelta(minutes=1))
    await dispatcher.run_pending()
    clock.advance(timedelta(hours=1))
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="voice") == []
    async with runtime.sessions() as session:
        escalations = (await session.scalars(select(Job.status).where(Job.kind == ESCALATE))).all()
    assert escalations == ["cancelled"]
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"]) == ("filled", "c2")
    assert shift["fanout"]["rounds"][1]["state"] == "skipped"
    assert (await _reply(client, 1, "yes"))["action"] == "already_filled"
    assert (await _fanout(client)).status_code == 409


async def test_reposting_reports_the_same_state_and_sends_nothing_new(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    first = await _fanout(client)
    await dispatcher.run_pending()
    again = await _fanout(client)
    assert again.status_code == 202
    assert again.json()["offers"] == first.json()["offers"] == 3
    assert again.json()["started_at"] == first.json()["started_at"]
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="sms") == RN_PHONES


async def test_concurrent_posts_start_one_fanout(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    responses = await asyncio.gather(*(_fanout(client) for _ in range(8)))
    assert {r.status_code for r in responses} == {202}
    assert {r.json()["offers"] for r in responses} == {3}
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="sms") == RN_PHONES


async def test_unknown_and_closed_shifts(
    client: httpx.AsyncClient, runtime: Runtime, tenant: str, staffed: str
) -> None:
    assert (await _fanout(client, "nope")).status_code == 404
    await client.post("/shifts/s1/cancel")
    response = await _fanout(client)
    assert response.status_code == 409
    assert response.json()["shift_status"] == "cancelled"


async def test_offer_ends_at_shift_start(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    tenant: str,
) -> None:
    await make_caregiver(runtime, tenant_id=tenant, id="c1", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant, id="soon", starts_in=timedelta(minutes=5))
    state = (await _fanout(client, "soon")).json()
    assert [r["state"] for r in state["rounds"]] == ["sent", "skipped"]
    assert state["next_round_at"] is None
    clock.advance(timedelta(minutes=5))
    await dispatcher.run_pending()
    assert (await client.get("/shifts/soon")).json()["status"] == "expired"
    late = await _reply(client, 1, "yes")
    assert late["action"] == "unmatched"
    clock.advance(TEN_MINUTES)
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="voice") == []


async def test_shift_id_in_the_reply_picks_the_offer(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, tenant: str
) -> None:
    await make_caregiver(runtime, tenant_id=tenant, id="c1", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant, id="a", starts_in=timedelta(hours=4))
    await make_shift(runtime, tenant_id=tenant, id="b", starts_in=timedelta(hours=24))
    await _fanout(client, "a")
    runtime.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    await _fanout(client, "b")
    assert (await _reply(client, 1, "yes", shift_id="a"))["shift_id"] == "a"
    assert (await _reply(client, 1, "yes"))["shift_id"] == "b"
    states = {s: (await client.get(f"/shifts/{s}")).json()["status"] for s in ("a", "b")}
    assert states == {"a": "filled", "b": "filled"}


async def test_opted_out_caregivers_are_not_offered(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    staffed: str,
) -> None:
    assert (await _reply(client, 1, "STOP"))["action"] == "opted_out"
    assert (await _fanout(client)).json()["offers"] == 2
    await dispatcher.run_pending()
    assert await phones_messaged(runtime, channel="sms") == [phone(2), phone(3)]


async def test_restart_midway_still_escalates_on_time(
    settings: Settings,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    staffed: str,
) -> None:
    await _fanout(client)
    await dispatcher.run_pending()
    # A new process: its own runtime (engine, workers) on the same database and time.
    restarted = Runtime.build(settings, clock)
    try:
        app = create_app(runtime=restarted)
        async with app.router.lifespan_context(app):
            clock.advance(TEN_MINUTES)
            assert await Dispatcher(restarted).run_pending() > 0
            assert await phones_messaged(restarted, channel="voice") == RN_PHONES
    finally:
        await restarted.close()


async def test_timeline_lists_offers_statuses_replies_and_assignment_in_order(
    clock: FrozenClock, client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    await _fanout(client)
    await dispatcher.run_pending()
    clock.advance(timedelta(seconds=2))
    await dispatcher.run_pending()
    clock.advance(timedelta(minutes=1))
    await _reply(client, 3, "no")
    await _reply(client, 1, "yes!")
    await _reply(client, 2, "yes")
    timeline = (await client.get("/shifts/s1/timeline")).json()
    assert timeline["status"] == "filled"
    entries = [
        (e["kind"], e["caregiver_id"], e["details"].get("status") or e["details"].get("action"))
        for e in timeline["entries"]
    ]
    assert entries[:3] == [("offer", f"c{n}", None) for n in (1, 2, 3)]
    statuses = sorted(e for e in entries[3:9])
    assert statuses == sorted(
        [("message_status", f"c{n}", s) for n in (1, 2, 3) for s in ("sent", "delivered")]
    )
    assert entries[9:] == [
        ("reply", "c3", "declined"),
        ("reply", "c1", "assigned"),
        ("assigned", "c1", None),
        ("reply", "c2", "already_filled"),
    ]
    times = [e["at"] for e in timeline["entries"]]
    assert times == sorted(times)
    assert timeline["entries"][0]["channel"] == "sms"
    assert (await client.get("/shifts/nope/timeline")).status_code == 404


async def test_progress_counts_offers_by_their_message_status(
    clock: FrozenClock, client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    def round_one(state: dict[str, Any]) -> dict[str, int]:
        counts: dict[str, int] = state["rounds"][0]["by_message_status"]
        return counts

    assert round_one((await _fanout(client)).json()) == {"queued": 3}
    await dispatcher.run_pending()
    assert round_one((await client.get("/shifts/s1")).json()["fanout"]) == {"sent": 3}
    clock.advance(timedelta(seconds=2))
    await dispatcher.run_pending()
    assert round_one((await client.get("/shifts/s1")).json()["fanout"]) == {"delivered": 3}
    timeline = (await client.get("/shifts/s1/timeline")).json()
    offers = [e for e in timeline["entries"] if e["kind"] == "offer"]
    assert [o["details"]["message_status"] for o in offers] == ["delivered"] * 3


async def test_at_one_instant_the_timeline_puts_statuses_before_the_replies_they_caused(
    client: httpx.AsyncClient, dispatcher: Dispatcher, staffed: str
) -> None:
    await _fanout(client)
    await dispatcher.run_pending()  # sent, on the frozen clock: the same instant as the offers
    await _reply(client, 2, "yes")
    entries = (await client.get("/shifts/s1/timeline")).json()["entries"]
    assert len({e["at"] for e in entries}) == 1
    assert [e["kind"] for e in entries] == ["offer"] * 3 + ["message_status"] * 3 + [
        "reply",
        "assigned",
    ]
    statuses = [e for e in entries if e["kind"] == "message_status"]
    assert all(e["round"] == 1 and e["channel"] == "sms" for e in statuses)
    assert {e["details"]["status"] for e in statuses} == {"sent"}


async def test_messages_carry_the_idempotency_key_of_shift_round_and_caregiver(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    staffed: str,
) -> None:
    await _fanout(client)
    clock.advance(TEN_MINUTES)
    await dispatcher.run_pending()
    keys = sorted(m.idempotency_key or "" for m in await offer_messages(runtime))
    assert keys == sorted(f"shift:s1:round:{r}:caregiver:c{n}" for r in (1, 2) for n in (1, 2, 3))


async def test_another_tenant_cannot_see_or_fan_out_the_shift(
    runtime: Runtime, client: httpx.AsyncClient, staffed: str
) -> None:
    _, key = await make_tenant(runtime, name="other agency")
    other = bearer(key)
    assert (await client.post("/shifts/s1/fanout", headers=other)).status_code == 404
    assert (await client.get("/shifts/s1/timeline", headers=other)).status_code == 404
    assert (await client.get("/shifts", headers=other)).json()["items"] == []
    assert (await client.post("/shifts/s1/cancel", headers=other)).status_code == 404
