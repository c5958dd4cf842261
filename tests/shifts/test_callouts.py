"""Call-outs on a frozen clock: a filled shift dropped by SMS or by a coordinator opens again
and is re-filled without the one who dropped it; old offers still route."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.events.models import Event
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts.claims import answer_offer
from caretime.shifts.models import Offer
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone

RN = [1, 2, 3]


@pytest.fixture
async def filled(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> str:
    """Three RNs offered s1 by SMS; c1 said yes."""
    tenant = await default_tenant_id(runtime)
    for n in RN:
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    assert (await _reply(client, 1, "yes"))["action"] == "assigned"
    return tenant


async def _reply(client: httpx.AsyncClient, n: int, body: str, **hint: str) -> dict[str, str]:
    response = await client.post("/messages/inbound", json={"from": phone(n), "body": body, **hint})
    assert response.status_code == 200, response.text
    result: dict[str, str] = response.json()
    return result


async def _texts_to(runtime: Runtime, n: int) -> list[Message]:
    statement = select(Message).where(Message.to_phone == phone(n), Message.direction == "outbound")
    async with runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(Message.created_at))).all())


async def _offers(runtime: Runtime) -> list[Offer]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(Offer).order_by(Offer.sent_at))).all())


async def _event_types(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(Event.type, Event.actor).order_by(Event.seq))
        return [(type_, actor) for type_, actor in rows]


async def test_drop_by_sms_reopens_and_refills_without_the_dropper(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, filled: str
) -> None:
    result = await _reply(client, 1, "Actually no, I cannot")
    assert (result["intent"], result["action"], result["shift_id"]) == ("decline", "dropped", "s1")
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"]) == ("open", None)
    assert (shift["fanout"]["generation"], shift["fanout"]["offers"]) == (2, 2)
    await dispatcher.run_pending()
    refill = [o for o in await _offers(runtime) if o.generation == 2]
    assert sorted(o.caregiver_id for o in refill) == ["c2", "c3"]
    # The re-fill is new messages: c2 has two offers now, each sent once.
    offers_to_c2 = [m for m in await _texts_to(runtime, 2) if m.related_kind == "shifts.offer"]
    assert len(offers_to_c2) == 2
    assert len({m.idempotency_key for m in offers_to_c2}) == 2
    assert all(m.provider_id is not None for m in offers_to_c2)
    replies = [m.body for m in await _texts_to(runtime, 1) if m.related_kind != "shifts.offer"]
    assert any("you are off the RN shift" in body for body in replies)
    assert ("shift.dropped", f"inbound:{result['message_id']}") in await _event_types(runtime)


async def test_the_timeline_keeps_who_held_it_when_and_why_it_was_released(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock, filled: str
) -> None:
    held_since = clock.now()
    clock.advance(timedelta(hours=1))
    await _reply(client, 1, "no, sorry, sick kid")
    timeline = (await client.get("/shifts/s1/timeline")).json()
    kinds = [e["kind"] for e in timeline["entries"]]
    assert kinds.index("assigned") < kinds.index("dropped")
    [dropped] = [e for e in timeline["entries"] if e["kind"] == "dropped"]
    assert dropped["caregiver_id"] == "c1"
    assert dropped["details"]["by"] == "caregiver"
    assert dropped["details"]["held_since"].startswith(held_since.isoformat()[:19])
    assert dropped["at"].startswith((clock.now()).isoformat()[:19])


async def test_drop_by_api_tells_the_caregiver_and_refills(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, filled: str
) -> None:
    response = await client.post("/shifts/s1/unassign", json={"reason": "no-show risk"})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["assigned_caregiver_id"]) == ("open", None)
    await dispatcher.run_pending()
    [notice] = [m for m in await _texts_to(runtime, 1) if m.related_kind == "shifts.notice"]
    assert notice.body.startswith("Your coordinator has taken you off the RN shift")
    assert notice.provider_id is not None
    assert sorted(o.caregiver_id for o in await _offers(runtime) if o.generation == 2) == [
        "c2",
        "c3",
    ]
    [dropped] = [
        e
        for e in (await client.get("/shifts/s1/timeline")).json()["entries"]
        if e["kind"] == "dropped"
    ]
    assert dropped["details"]["reason"] == "no-show risk"
    assert dropped["details"]["by"] == "coordinator"
    # The one taken off cannot take it back; someone else can.
    again = await _reply(client, 1, "yes", shift_id="s1")
    assert again["action"] == "unavailable"
    assert (await _reply(client, 3, "yes"))["action"] == "assigned"


async def test_unassign_needs_a_filled_shift_and_a_reason(
    client: httpx.AsyncClient, filled: str
) -> None:
    missing = await client.post("/shifts/s1/unassign", json={})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"][-1] == "reason"
    assert (await client.post("/shifts/nope/unassign", json={"reason": "x"})).status_code == 404
    assert (await client.post("/shifts/s1/unassign", json={"reason": "x"})).status_code == 200
    twice = await client.post("/shifts/s1/unassign", json={"reason": "x"})
    assert twice.status_code == 409
    assert "open" in twice.json()["detail"]


async def test_manual_refill_waits_for_the_coordinator(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, filled: str
) -> None:
    patched = await client.patch("/tenants/me/policy", json={"shifts": {"refill": "manual"}})
    assert patched.status_code == 200, patched.text
    await _reply(client, 1, "no")
    state = (await client.get("/shifts/s1")).json()
    assert (state["status"], state["fanout"]["current_round"]) == ("open", 0)
    assert {r["state"] for r in state["fanout"]["rounds"]} == {"stopped"}
    assert [o for o in await _offers(runtime) if o.generation == 2] == []
    restarted = await client.post("/shifts/s1/fanout")
    assert restarted.status_code == 202
    assert (restarted.json()["generation"], restarted.json()["offers"]) == (2, 2)
    reported = await client.post("/shifts/s1/fanout")
    assert (reported.json()["generation"], reported.json()["offers"]) == (2, 2)


async def test_a_late_yes_to_the_old_offer_claims_the_reopened_shift_once(
    runtime: Runtime, client: httpx.AsyncClient, filled: str
) -> None:
    await _reply(client, 1, "can't make it after all")
    old = {o.caregiver_id: o.id for o in await _offers(runtime) if o.generation == 1}
    now = runtime.clock.now()
    outcomes = []
    for caregiver in ("c2", "c3", "c2"):
        async with transaction(runtime.sessions) as session:
            outcome = await answer_offer(session, filled, old[caregiver], "accept", now=now)
        outcomes.append(outcome.action)
    assert outcomes == ["assigned", "already_filled", "assigned"]
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"]) == ("filled", "c2")
    # The new generation's later rounds are cancelled like the first's.
    assert shift["fanout"]["rounds"][1]["state"] == "skipped"


async def test_the_refill_has_its_own_voice_round_and_old_rounds_stay_silent(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    filled: str,
) -> None:
    clock.advance(timedelta(minutes=5))
    await _reply(client, 1, "no")
    await dispatcher.run_pending()
    clock.advance(timedelta(minutes=5))  # the first fan-out's voice round would be due now
    await dispatcher.run_pending()
    assert [m for m in await _texts_to(runtime, 2) if m.channel == "voice"] == []
    clock.advance(timedelta(minutes=5))
    await dispatcher.run_pending()
    sent = [m for n in RN for m in await _texts_to(runtime, n)]
    calls = Counter(m.to_phone for m in sent if m.channel == "voice")
    assert calls == {phone(2): 1, phone(3): 1}
