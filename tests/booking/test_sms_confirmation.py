"""Confirmation by SMS: the hold's text, and YES / NO replies over POST /messages/inbound —
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from caretime.booking.models import Appointment
from caretime.booking.sms import BookingReplies
from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.messaging import Intent
from caretime.messaging.models import Message
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, slot_starts
from tests.messaging.support import default_tenant_id

# The clock starts at 2026-03-02T15:00Z; 3 March 11:00 New York (EST) is 16:00Z.
SLOT = "2026-03-03T16:00:00Z"
DAY = {"start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z"}
PHONE = "+12065550123"


@pytest.fixture
async def booked_day(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )


async def _reserve(client: httpx.AsyncClient, expect: int = 201, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/reservations",
        json={"provider_id": "dr-jekyll", "slot_start": SLOT, "client_id": "p-1", **extra},
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def _reply(client: httpx.AsyncClient, body: str) -> dict[str, Any]:
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _status(client: httpx.AsyncClient, reservation_id: str) -> str:
    status: str = (await client.get(f"/reservations/{reservation_id}")).json()["status"]
    return status


@pytest.mark.usefixtures("booked_day")
async def test_the_hold_texts_the_patient(client: httpx.AsyncClient, runtime: Runtime) -> None:
    hold = await _reserve(client, confirm_by_sms=True, phone="(206) 555-0123")
    async with transaction(runtime.sessions) as session:
        messages = (await session.scalars(select(Message))).all()
        phones = (await session.scalars(select(Appointment.patient_phone))).all()
    assert phones == [PHONE]
    assert [(m.channel, m.to_phone, m.idempotency_key) for m in messages] == [
        ("sms", PHONE, f"booking:{hold['id']}:confirm")
    ]
    assert messages[0].related_kind == "booking.reservation"
    assert messages[0].related_id == hold["id"]
    assert messages[0].body == (
        "Reply YES to confirm your appointment with Dr. Jekyll on Tue Mar 3, 2026 at 11:00 EST, "
        "or NO to cancel."
    )


@pytest.mark.usefixtures("booked_day")
async def test_yes_confirms_the_hold(client: httpx.AsyncClient) -> None:
    hold = await _reserve(client, confirm_by_sms=True, phone=PHONE)
    result = await _reply(client, "Yes")
    assert result["action"] == "confirmed"
    assert result["reservation_id"] == hold["id"]
    assert await _status(client, hold["id"]) == "confirmed"


@pytest.mark.usefixtures("booked_day")
async def test_no_cancels_the_hold_and_frees_the_slot(client: httpx.AsyncClient) -> None:
    hold = await _reserve(client, confirm_by_sms=True, phone=PHONE)
    assert SLOT not in await slot_starts(client, **DAY)
    result = await _reply(client, "no")
    assert (result["action"], result["reservation_id"]) == ("declined", hold["id"])
    assert await _status(client, hold["id"]) == "cancelled"
    assert SLOT in await slot_starts(client, **DAY)


@pytest.mark.usefixtures("booked_day")
async def test_an_unclear_reply_asks_again(client: httpx.AsyncClient) -> None:
    hold = await _reserve(client, confirm_by_sms=True, phone=PHONE)
    result = await _reply(client, "what time was it again")
    assert (result["action"], result["reservation_id"]) == ("clarify", hold["id"])
    assert await _status(client, hold["id"]) == "held"


@pytest.mark.usefixtures("booked_day")
async def test_yes_after_the_hold_expired_does_not_confirm(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    hold = await _reserve(client, confirm_by_sms=True, phone=PHONE)
    clock.advance(timedelta(minutes=30))
    result = await _reply(client, "yes")
    assert result["action"] == "lapsed"  # told so, and offered the time again (notices)
    assert await _status(client, hold["id"]) == "expired"


@pytest.mark.usefixtures("booked_day")
@pytest.mark.parametrize(
    "extra",
    [{"confirm_by_sms": True}, {"confirm_by_sms": True, "phone": "555"}, {"phone": "555"}],
    ids=["no-phone", "undialable", "undialable-without-sms"],
)
async def test_confirm_by_sms_needs_a_dialable_phone(
    client: httpx.AsyncClient, runtime: Runtime, extra: dict[str, Any]
) -> None:
    await _reserve(client, expect=422, **extra)
    async with transaction(runtime.sessions) as session:
        assert (await session.scalars(select(Appointment))).all() == []


@pytest.mark.usefixtures("booked_day")
async def test_a_yes_that_loses_the_race_with_expiry_gets_a_polite_reply(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    hold = await _reserve(client, confirm_by_sms=True, phone=PHONE)
    router = BookingReplies()
    tenant_id = await default_tenant_id(runtime)
    async with transaction(runtime.sessions) as session:
        question = await router.open_question(session, tenant_id, PHONE, {})
    assert question is not None
    clock.advance(timedelta(minutes=30))  # the hold expires between question and answer
    async with transaction(runtime.sessions) as session:
        result = await router.answer(session, tenant_id, question, Intent.accept, Message())
    assert result.action == "lapsed"
    assert result.details == {"reservation_id": hold["id"], "status": "expired", "slot_free": True}
    assert result.reply is not None
    assert result.reply.startswith("Sorry")
    assert await _status(client, hold["id"]) == "expired"
