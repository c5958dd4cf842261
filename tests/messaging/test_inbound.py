"""Replies: recorded, opt-out / opt-in / help honoured, everything else routed or answered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.messaging.routing import routers
from caretime.runtime import Runtime
from tests.messaging.support import PHONE, FakeRouter, default_tenant_id, make_message
from tests.support import bearer, make_tenant


@pytest.fixture
def shifts() -> Iterator[FakeRouter]:
    router = FakeRouter("tests.shifts", hint_keys=("shift_id",))
    routers.register(router)
    yield router
    routers.remove(router.name)


@pytest.fixture
def outreach() -> Iterator[FakeRouter]:
    router = FakeRouter("tests.outreach")
    routers.register(router)
    yield router
    routers.remove(router.name)


async def _replies_to(runtime: Runtime, phone: str = PHONE) -> list[Message]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.direction == "outbound", Message.to_phone == phone)
            .order_by(Message.created_at, Message.id)
        )
        return list(rows.all())


async def test_stop_suppresses_sms_and_voice_and_confirms_once(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    first = await client.post("/messages/inbound", json={"from": PHONE, "body": "STOP"})
    assert first.status_code == 200
    assert first.json()["intent"] == "opt_out"
    assert first.json()["action"] == "opted_out"
    again = await client.post("/messages/inbound", json={"from_phone": PHONE, "body": "stop"})
    assert again.json()["action"] == "opted_out"
    [confirmation] = await _replies_to(runtime)
    assert confirmation.status == "queued"
    assert "START" in confirmation.body
    tenant_id = await default_tenant_id(runtime)
    sms = await make_message(runtime, tenant_id=tenant_id, key="after-stop")
    call = await make_message(runtime, tenant_id=tenant_id, key="after-stop-call", channel="voice")
    assert (sms.status, call.status) == ("suppressed", "suppressed")


async def test_the_stop_confirmation_and_help_reach_the_opted_out_phone(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    await client.post("/messages/inbound", json={"from": PHONE, "body": "STOP"})
    await client.post("/messages/inbound", json={"from": PHONE, "body": "HELP"})
    await client.post("/messages/inbound", json={"from": PHONE, "body": "anyone there?"})
    await dispatcher.run_pending()
    statuses = [(reply.body.split()[0], reply.status) for reply in await _replies_to(runtime)]
    assert [status for _, status in statuses[:2]] == ["sent", "sent"]
    assert statuses[2][1] == "suppressed"


async def test_start_resubscribes(runtime: Runtime, client: httpx.AsyncClient) -> None:
    await client.post("/messages/inbound", json={"from": PHONE, "body": "STOP"})
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": "START"})
    assert response.json()["action"] == "opted_in"
    replies = await _replies_to(runtime)
    assert [r.status for r in replies] == ["queued", "queued"]
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    assert message.status == "queued"


async def test_help_is_answered_even_when_opted_out(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    await client.post("/messages/inbound", json={"from": PHONE, "body": "STOP"})
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": "HELP"})
    assert response.json()["intent"] == "help"
    assert response.json()["action"] == "help"
    help_reply = (await _replies_to(runtime))[-1]
    assert "STOP" in help_reply.body
    assert help_reply.status == "queued"


async def test_unmatched_reply_is_stored_and_answered_politely(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": "yes"})
    body = response.json()
    assert (body["intent"], body["action"]) == ("accept", "unmatched")
    async with runtime.sessions() as session:
        stored = await session.get(Message, body["message_id"])
    assert stored is not None
    assert (stored.direction, stored.status, stored.body) == ("inbound", "received", "yes")
    assert (stored.intent, stored.route_action) == ("accept", "unmatched")
    [reply] = await _replies_to(runtime)
    assert reply.idempotency_key == f"reply:{stored.id}"


async def test_reply_goes_to_the_most_recent_open_question(
    runtime: Runtime, client: httpx.AsyncClient, shifts: FakeRouter, outreach: FakeRouter
) -> None:
    now = runtime.clock.now()
    shifts.ask(PHONE, "S1", now - timedelta(minutes=5))
    outreach.ask(PHONE, "C9", now - timedelta(minutes=1))
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": "yep I can"})
    assert response.json() == {
        "intent": "accept",
        "action": "assigned",
        "router": "tests.outreach",
        "tests.outreach_ref": "C9",
        "message_id": response.json()["message_id"],
    }
    assert [ref for ref, _, _ in outreach.answered] == ["C9"]
    assert shifts.answered == []


async def test_a_hint_names_the_question(
    runtime: Runtime, client: httpx.AsyncClient, shifts: FakeRouter, outreach: FakeRouter
) -> None:
    outreach.ask(PHONE, "C9", runtime.clock.now())
    response = await client.post(
        "/messages/inbound", json={"from": PHONE, "body": "no", "shift_id": "S7"}
    )
    body = response.json()
    assert (body["intent"], body["action"], body["router"]) == (
        "decline",
        "declined",
        "tests.shifts",
    )
    assert shifts.answered[0][:2] == ("S7", "decline")


async def test_router_reply_is_sent_back(
    runtime: Runtime, client: httpx.AsyncClient, outreach: FakeRouter
) -> None:
    outreach.ask(PHONE, "C9", runtime.clock.now())
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": "hmm"})
    assert response.json()["action"] == "clarify"
    [reply] = await _replies_to(runtime)
    assert reply.body == "Please reply YES or NO."


async def test_inbound_needs_a_key_a_sender_and_a_phone(client: httpx.AsyncClient) -> None:
    anonymous = await client.post(
        "/messages/inbound", json={"from": PHONE, "body": "yes"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    no_sender = await client.post("/messages/inbound", json={"body": "yes"})
    assert no_sender.status_code == 422
    not_a_phone = await client.post("/messages/inbound", json={"from": "abc", "body": "yes"})
    assert not_a_phone.status_code == 422


async def test_opt_out_is_per_tenant(runtime: Runtime, client: httpx.AsyncClient) -> None:
    _, other_key = await make_tenant(runtime, name="other agency")
    await client.post(
        "/messages/inbound", json={"from": PHONE, "body": "STOP"}, headers=bearer(other_key)
    )
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    assert message.status == "queued"


async def test_message_lookup_shows_events(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    response = await client.get(f"/messages/{message.id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["to"], body["provider"]) == ("sent", PHONE, "simulator")
    assert [e["status"] for e in body["events"]] == ["sent"]
    assert (await client.get("/messages/msg_nope")).status_code == 404


async def _inbound_count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(Message.id).where(Message.direction == "inbound"))
        return len(rows.all())


@pytest.mark.parametrize(
    ("headers", "extra"),
    [({"Idempotency-Key": "relay-42"}, {}), ({}, {"message_id": "SMrelayed42"})],
    ids=["idempotency-key", "provider-message-id"],
)
async def test_the_same_reply_twice_is_recorded_and_answered_once(
    runtime: Runtime,
    client: httpx.AsyncClient,
    outreach: FakeRouter,
    headers: dict[str, str],
    extra: dict[str, str],
) -> None:
    outreach.ask(PHONE, "call-1", runtime.clock.now())
    body = {"from": PHONE, "body": "what time?", **extra}
    # Concurrent twins (a relay retrying on a timeout) and a late third copy.
    twins = await asyncio.gather(
        *(client.post("/messages/inbound", json=body, headers=headers) for _ in range(4))
    )
    late = await client.post("/messages/inbound", json=body, headers=headers)
    answers = [response.json() for response in (*twins, late)]
    assert {response.status_code for response in (*twins, late)} == {200}
    assert {(a["message_id"], a["action"]) for a in answers} == {
        (answers[0]["message_id"], "clarify")
    }
    assert await _inbound_count(runtime) == 1
    assert len(outreach.answered) == 1
    assert len(await _replies_to(runtime)) == 1  # the sender is texted once
