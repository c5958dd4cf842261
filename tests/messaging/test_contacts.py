"""GET /contacts/{phone}: consent per channel with its history; PUT .../consent records
consent given by other means, with a note."""

from datetime import timedelta

import httpx
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.events.models import Event
from caretime.runtime import Runtime
from tests.support import bearer, make_tenant

PHONE = "+12125550100"


async def test_a_number_never_heard_from_is_opted_in_everywhere(
    client: httpx.AsyncClient,
) -> None:
    contact = (await client.get("/contacts/212-555-0100")).json()
    assert contact == {
        "phone": PHONE,
        "consent": {"sms": {"opted_out": False, "changed_at": None, "how": None},
                    "voice": {"opted_out": False, "changed_at": None, "how": None}},
        "history": [],
    }  # fmt: skip


async def test_consent_history_records_replies_and_notes_newest_first(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await client.post("/messages/inbound", json={"from": PHONE, "body": "STOP"})
    clock.advance(timedelta(days=1))
    response = await client.put(
        f"/contacts/{PHONE}/consent",
        json={"channel": "voice", "opted_out": False, "note": "called the front desk"},
    )
    assert response.status_code == 200
    contact = response.json()
    assert contact["consent"]["sms"] == {
        "opted_out": True, "changed_at": "2026-03-02T15:00:00Z", "how": "replied STOP"}  # fmt: skip
    assert contact["consent"]["voice"] == {
        "opted_out": False, "changed_at": "2026-03-03T15:00:00Z",
        "how": "recorded by the tenant"}  # fmt: skip
    latest, *earlier = contact["history"]
    assert (latest["channel"], latest["opted_out"], latest["source"], latest["note"]) == (
        "voice", False, "api", "called the front desk")  # fmt: skip
    assert {(c["channel"], c["opted_out"], c["source"], c["keyword"]) for c in earlier} == {
        ("sms", True, "reply", "STOP"), ("voice", True, "reply", "STOP")}  # fmt: skip
    assert all(c["message_id"].startswith("msg_") for c in earlier)
    assert (await client.get(f"/contacts/{PHONE}")).json() == contact


async def test_all_channels_at_once_and_bad_input(client: httpx.AsyncClient) -> None:
    body = {"channel": "all", "opted_out": True, "note": "letter of 1 March"}
    contact = (await client.put("/contacts/(212) 555-0100/consent", json=body)).json()
    assert [contact["consent"][c]["opted_out"] for c in ("sms", "voice")] == [True, True]
    no_note = await client.put(f"/contacts/{PHONE}/consent", json={**body, "note": ""})
    assert no_note.status_code == 422
    extra = await client.put(f"/contacts/{PHONE}/consent", json={**body, "reason": "x"})
    assert extra.status_code == 422
    bad_phone = await client.get("/contacts/not-a-phone")
    assert bad_phone.status_code == 422
    assert "is not a valid phone number" in bad_phone.json()["detail"]


async def test_another_tenant_sees_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await client.post("/messages/inbound", json={"from": PHONE, "body": "STOP"})
    _, key = await make_tenant(runtime, name="other")
    other = (await client.get(f"/contacts/{PHONE}", headers=bearer(key))).json()
    assert other["history"] == []
    assert other["consent"]["sms"]["opted_out"] is False


async def test_a_consent_statement_is_an_event_with_its_actor(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = {"channel": "voice", "opted_out": True, "note": "asked by letter"}
    await client.put(f"/contacts/{PHONE}/consent", json=body)
    async with runtime.sessions() as session:
        (event,) = await session.scalars(select(Event))
    assert (event.type, event.data["channels"]) == ("message.opted_out", ["voice"])
    assert event.actor.startswith("key:")
