"""A visit's outcome over the API: arrived, fulfilled, no_show and the table of moves allowed,
the FHIR mapping, events, and the offer to rebook after a no-show — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider

# The clock starts at 2026-03-02T15:00Z; the visit is 4 March 11:00 EST (16:00Z).
VISIT = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
PHONE = "+12125550123"


@pytest.fixture
async def visit(client: httpx.AsyncClient) -> dict[str, Any]:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "08:00", "end": "15:00"}
    )
    body = {
        "provider_id": "dr-jekyll",
        "slot_start": "2026-03-04T16:00:00Z",
        "client_id": "p",
        "phone": PHONE,
    }
    hold: dict[str, Any] = (await client.post("/reservations", json=body)).json()
    return hold


async def patch(client: httpx.AsyncClient, visit_id: str, status: str) -> httpx.Response:
    return await client.patch(f"/reservations/{visit_id}", json={"status": status})


async def into(client: httpx.AsyncClient, clock: FrozenClock, visit_id: str, path: str) -> None:
    """Walk the visit through `path` (statuses, each at a time relative to the visit)."""
    for step in path.split(">") if path else []:
        status, _, minutes = step.partition("@")
        clock.set(VISIT + timedelta(minutes=int(minutes or 0)))
        response = await patch(client, visit_id, status)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "at", "target", "allowed"),
    [
        ("confirmed", -121, "arrived", False),  # a day early is not an arrival
        ("confirmed", -120, "arrived", True),  # checking in up to 2 h early
        ("confirmed", -1, "no_show", False),  # no no-show before the start
        ("confirmed", 0, "no_show", True),
        ("confirmed", -1, "fulfilled", False),
        ("confirmed", 30, "fulfilled", True),  # checked out without a recorded arrival
        ("confirmed>arrived@-10", 20, "fulfilled", True),
        ("confirmed>arrived@-10", 20, "no_show", False),
        ("confirmed>no_show@15", 40, "arrived", True),  # a late arrival corrects it
        ("confirmed>no_show@15", 40, "fulfilled", False),
        ("confirmed>fulfilled@30", 40, "arrived", False),
        ("cancelled", 0, "arrived", False),  # no arrival for a cancelled visit
        ("cancelled", 0, "no_show", False),
        ("", 0, "arrived", False),  # a hold (lapsed by now) never arrives
        ("denied", 0, "fulfilled", False),
        ("confirmed>arrived@-10", 0, "cancelled", False),  # the patient is there
    ],
)
@pytest.mark.usefixtures("visit")
async def test_outcome_transitions(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    visit: dict[str, Any],
    path: str,
    at: int,
    target: str,
    allowed: bool,
) -> None:
    setup = path.replace("confirmed", "confirmed@-3000").replace("cancelled", "cancelled@-3000")
    await into(client, clock, visit["id"], setup.replace("denied", "denied@-3000"))
    before = (await client.get(f"/reservations/{visit['id']}")).json()["status"]
    clock.set(VISIT + timedelta(minutes=at))
    response = await patch(client, visit["id"], target)
    after = (await client.get(f"/reservations/{visit['id']}")).json()["status"]
    if allowed:
        assert (response.status_code, after) == (200, target)
    else:
        assert response.status_code == 409, response.text
        assert response.json()["type"] == "urn:caretime:problem:invalid-transition"
        assert after == (before if before != "held" else "expired")


@pytest.mark.usefixtures("visit")
async def test_outcomes_map_to_fhir_and_are_events(
    client: httpx.AsyncClient, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    await into(client, clock, visit["id"], "confirmed@-3000>arrived@-5")
    arrived = (await client.get(f"/reservations/{visit['id']}")).json()
    assert arrived["fhir"] == {"appointment": "arrived", "slot": "busy"}
    assert arrived["arrived_at"] == "2026-03-04T15:55:00Z"
    await into(client, clock, visit["id"], "fulfilled@25")
    done = (await client.get(f"/reservations/{visit['id']}")).json()
    assert done["fhir"] == {"appointment": "fulfilled", "slot": "busy"}
    again = await patch(client, visit["id"], "fulfilled")  # a retry: unchanged
    assert again.status_code == 200
    history = (await client.get(f"/reservations/{visit['id']}/history")).json()
    outcomes = [(e["type"], e["occurred_at"]) for e in history if "arrived" in e["type"]]
    assert outcomes == [("appointment.arrived", "2026-03-04T15:55:00Z")]
    assert [e["type"] for e in history].count("appointment.fulfilled") == 1


async def texts_to(runtime: Runtime) -> list[str]:
    async with transaction(runtime.sessions) as session:
        bodies = await session.scalars(
            select(Message.body)
            .where(Message.to_phone == PHONE, Message.direction == "outbound")
            .order_by(Message.created_at, Message.id)
        )
        return list(bodies)


async def test_a_no_show_is_offered_to_rebook_and_a_number_books_it(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    runtime: Runtime,
    visit: dict[str, Any],
) -> None:
    await make_availability(
        client, windows={"date": "2026-03-06", "start": "09:00", "end": "10:00"}
    )
    await into(client, clock, visit["id"], "confirmed@-3000>no_show@20")
    mark = await patch(client, visit["id"], "NO_SHOW")
    assert mark.json()["fhir"]["appointment"] == "noshow"
    await dispatcher.run_pending()
    assert (await texts_to(runtime))[-1] == (
        "We missed you at your appointment with Dr. Jekyll on Wed Mar 4, 2026 at 11:00 EST. "
        "Reply R to pick a new time."
    )
    inbound = {"from": PHONE, "body": "R"}
    offered = (await client.post("/messages/inbound", json=inbound)).json()
    assert offered["action"] == "times_offered"
    assert offered["options"][0]["slot_start"] == "2026-03-06T14:00:00Z"
    assert (await texts_to(runtime))[-1].startswith(
        "Reply 1, 2 or 3 to book an appointment with Dr. Jekyll:"
    )
    booked = (await client.post("/messages/inbound", json={"from": PHONE, "body": "1"})).json()
    assert booked["action"] == "booked"
    new = (await client.get(f"/reservations/{booked['new_reservation_id']}")).json()
    assert (new["status"], new["slot_start"]) == ("confirmed", "2026-03-06T14:00:00Z")
    missed = (await client.get(f"/reservations/{visit['id']}")).json()
    assert missed["status"] == "no_show"


async def test_the_no_show_follow_up_waits_for_the_morning_and_can_be_turned_off(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    runtime: Runtime,
    visit: dict[str, Any],
) -> None:
    await into(client, clock, visit["id"], "confirmed@-3000")
    clock.set(datetime(2026, 3, 5, 3, 0, tzinfo=UTC))  # 22:00 in New York
    assert (await patch(client, visit["id"], "no_show")).status_code == 200
    await dispatcher.run_pending()
    assert len(await texts_to(runtime)) == 0
    clock.set(datetime(2026, 3, 5, 13, 0, tzinfo=UTC))  # 08:00
    await dispatcher.run_pending()
    assert len(await texts_to(runtime)) == 1


async def test_no_follow_up_when_policy_turns_it_off(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    runtime: Runtime,
    visit: dict[str, Any],
) -> None:
    await client.patch("/tenants/me/policy", json={"booking": {"no_show_followup": False}})
    await into(client, clock, visit["id"], "confirmed@-3000>no_show@30")
    clock.set(VISIT + timedelta(hours=3))
    await dispatcher.run_pending()
    assert await texts_to(runtime) == []
