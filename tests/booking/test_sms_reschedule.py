"""Moving a visit by SMS: R lists the next three free times, a number moves the visit there
— on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from caretime.db import transaction
from caretime.messaging.models import Message
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, make_reservation

# The clock starts at 2026-03-02T15:00Z; 4 March 09:00 New York (EST) is 14:00Z.
PHONE = "+12065550123"
NINE = "2026-03-04T14:00:00Z"


@pytest.fixture
async def visit(client: httpx.AsyncClient) -> dict[str, Any]:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "09:00", "end": "10:15"}
    )
    response = await client.post(
        "/reservations",
        json={
            "provider_id": "dr-jekyll",
            "slot_start": NINE,
            "client_id": "p-1",
            "confirm_by_sms": True,
            "phone": PHONE,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def text(client: httpx.AsyncClient, body: str) -> dict[str, Any]:
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def last_text_to_patient(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        sent = await session.scalars(
            select(Message.body)
            .where(Message.to_phone == PHONE, Message.direction == "outbound")
            .order_by(Message.created_at.desc(), Message.id.desc())
        )
        return sent.first() or ""


async def test_r_lists_the_next_three_times_and_a_number_moves_the_visit(
    client: httpx.AsyncClient, runtime: Runtime, visit: dict[str, Any]
) -> None:
    offered = await text(client, "R")
    assert offered["action"] == "times_offered"
    assert [o["slot_start"] for o in offered["options"]] == [
        "2026-03-04T14:15:00Z",
        "2026-03-04T14:30:00Z",
        "2026-03-04T14:45:00Z",
    ]
    assert await last_text_to_patient(runtime) == (
        "Reply 1, 2 or 3 to move your appointment with Dr. Jekyll:\n"
        "1) Wed Mar 4, 2026 at 09:15 EST\n"
        "2) Wed Mar 4, 2026 at 09:30 EST\n"
        "3) Wed Mar 4, 2026 at 09:45 EST\n"
        "or NO to keep it."
    )
    moved = await text(client, "2")
    assert (moved["action"], moved["reservation_id"]) == ("rescheduled", visit["id"])
    after = (await client.get(f"/reservations/{visit['id']}")).json()
    assert (after["status"], after["slot_start"]) == ("held", "2026-03-04T14:30:00Z")
    assert await last_text_to_patient(runtime) == (
        "Done: your appointment is now with Dr. Jekyll on Wed Mar 4, 2026 at 09:30 EST. "
        "Reply YES to confirm it, or NO to cancel."
    )
    history = (await client.get(f"/reservations/{visit['id']}/history")).json()
    assert history[-1]["type"] == "appointment.rescheduled"
    assert history[-1]["actor"].startswith("inbound:")
    # The visit was a hold: the next YES confirms it where it is now.
    assert (await text(client, "yes"))["action"] == "confirmed"
    assert (await client.get(f"/reservations/{visit['id']}")).json()["status"] == "confirmed"


async def test_a_time_taken_meanwhile_gets_an_apology_and_fresh_times(
    client: httpx.AsyncClient, runtime: Runtime, visit: dict[str, Any]
) -> None:
    await text(client, "reschedule please")
    await make_reservation(client, slot_start="2026-03-04T14:15:00Z", client_id="p-2")
    again = await text(client, "1")
    assert again["action"] == "times_offered"
    assert [o["slot_start"] for o in again["options"]] == [
        "2026-03-04T14:30:00Z",
        "2026-03-04T14:45:00Z",
        "2026-03-04T15:00:00Z",
    ]
    assert (await last_text_to_patient(runtime)).startswith(
        "Sorry, that time is no longer free. Reply 1, 2 or 3"
    )
    assert (await client.get(f"/reservations/{visit['id']}")).json()["slot_start"] == NINE


async def test_no_keeps_the_visit_and_nonsense_asks_again(
    client: httpx.AsyncClient, visit: dict[str, Any]
) -> None:
    await text(client, "r")
    assert (await text(client, "7"))["action"] == "clarify"
    assert (await text(client, "what"))["action"] == "clarify"
    assert (await text(client, "no"))["action"] == "kept"
    after = (await client.get(f"/reservations/{visit['id']}")).json()
    assert (after["status"], after["slot_start"]) == ("held", NINE)
