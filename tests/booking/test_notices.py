"""Patient notices: whatever the clinic changes about a visit, a patient with a phone hears
it once, outside quiet hours, with how to rebook; a lapsed hold's YES is told so and offered
the time again; "cancel my appointment" asks first; CANCEL alone opts out — on SQLite and
PostgreSQL."""

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
from tests.booking.support import make_availability, make_provider, make_reservation

# The clock starts at 2026-03-02T15:00Z; 4 March 11:00 New York (EST) is 16:00Z.
PHONE = "+12125550123"
ELEVEN = "2026-03-04T16:00:00Z"
WHEN = "Dr. Jekyll on Wed Mar 4, 2026 at 11:00 EST"


@pytest.fixture
async def clinic(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "08:00", "end": "15:00"}
    )


async def reserve(
    client: httpx.AsyncClient, *, confirm: bool, by_sms: bool = False, slot: str = ELEVEN
) -> str:
    body = {
        "provider_id": "dr-jekyll",
        "slot_start": slot,
        "client_id": "p",
        "phone": PHONE,
        "confirm_by_sms": by_sms,
    }
    response = await client.post("/reservations", json=body)
    assert response.status_code == 201, response.text
    visit_id: str = response.json()["id"]
    if confirm:
        await client.post(f"/reservations/{visit_id}/confirm")
    return visit_id


async def texts(runtime: Runtime) -> list[str]:
    async with transaction(runtime.sessions) as session:
        bodies = await session.scalars(
            select(Message.body)
            .where(Message.to_phone == PHONE, Message.direction == "outbound")
            .order_by(Message.created_at, Message.id)
        )
        return list(bodies)


async def say(client: httpx.AsyncClient, body: str) -> dict[str, Any]:
    response = await client.post("/messages/inbound", json={"from": PHONE, "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.usefixtures("clinic")
async def test_a_visit_cancelled_by_the_clinic_is_told_once_and_can_rebook(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    visit_id = await reserve(client, confirm=True)
    await client.post(f"/reservations/{visit_id}/cancel")
    await client.post(f"/reservations/{visit_id}/cancel")  # a retry changes nothing
    await dispatcher.run_pending()
    await dispatcher.run_pending()
    notice = f"Your appointment with {WHEN} has been cancelled. Reply R to pick a new time."
    assert await texts(runtime) == [notice]
    offered = await say(client, "R")
    assert offered["action"] == "times_offered"
    assert offered["options"][0]["slot_start"] == "2026-03-04T13:00:00Z"
    booked = await say(client, "2")
    assert booked["action"] == "booked"
    new = (await client.get(f"/reservations/{booked['new_reservation_id']}")).json()
    assert (new["status"], new["slot_start"]) == ("confirmed", "2026-03-04T13:15:00Z")


@pytest.mark.usefixtures("clinic")
async def test_a_denied_request_is_told(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    visit_id = await reserve(client, confirm=False)
    await client.patch(f"/reservations/{visit_id}", json={"status": "DENIED"})
    await dispatcher.run_pending()
    assert await texts(runtime) == [
        f"Sorry, your appointment request with {WHEN} could not be accepted. "
        "Reply R to pick a new time."
    ]


@pytest.mark.usefixtures("clinic")
async def test_a_visit_cancelled_by_force_removed_availability_is_told(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    await reserve(client, confirm=True)
    removed = await client.post(
        "/providers/dr-jekyll/availability",
        json={"date": "2026-03-04", "action": "remove"},
        params={"force": "true"},
    )
    assert len(removed.json()["cancelled_appointments"]) == 1
    await dispatcher.run_pending()
    assert await texts(runtime) == [
        f"Your appointment with {WHEN} has been cancelled: Dr. Jekyll is no longer available "
        "then. Reply R to pick a new time."
    ]


@pytest.mark.usefixtures("clinic")
async def test_a_visit_moved_by_the_clinic_is_told_and_no_asks_before_cancelling(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    visit_id = await reserve(client, confirm=True)
    await client.post(
        f"/reservations/{visit_id}/reschedule", json={"slot_start": "2026-03-04T18:00:00Z"}
    )
    await dispatcher.run_pending()
    assert await texts(runtime) == [
        "Your appointment with Dr. Jekyll has moved from Wed Mar 4, 2026 at 11:00 EST to "
        "Wed Mar 4, 2026 at 13:00 EST. Reply R to pick another time or NO to cancel."
    ]
    assert (await say(client, "no"))["action"] == "cancel_asked"
    assert (await client.get(f"/reservations/{visit_id}")).json()["status"] == "confirmed"


@pytest.mark.usefixtures("clinic")
async def test_a_change_the_patient_made_by_sms_gets_no_notice(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    visit_id = await reserve(client, confirm=False, by_sms=True)
    assert (await say(client, "no"))["action"] == "declined"
    await dispatcher.run_pending()
    assert (await client.get(f"/reservations/{visit_id}")).json()["status"] == "cancelled"
    assert (await texts(runtime))[1:] == ["Cancelled."]


@pytest.mark.usefixtures("clinic")
async def test_a_notice_waits_for_the_end_of_quiet_hours(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    visit_id = await reserve(client, confirm=True)
    clock.set(datetime(2026, 3, 3, 3, 0, tzinfo=UTC))  # 22:00 in New York
    await client.post(f"/reservations/{visit_id}/cancel")
    await dispatcher.run_pending()
    assert await texts(runtime) == []
    clock.set(datetime(2026, 3, 3, 13, 0, tzinfo=UTC))  # 08:00
    await dispatcher.run_pending()
    assert len(await texts(runtime)) == 1


@pytest.mark.usefixtures("clinic")
async def test_yes_after_the_hold_lapsed_offers_the_time_again(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    hold_id = await reserve(client, confirm=False, by_sms=True)
    clock.advance(timedelta(minutes=31))
    lapsed = await say(client, "yes")
    assert (lapsed["action"], lapsed["slot_free"]) == ("lapsed", True)
    assert (await texts(runtime))[-1] == (
        f"Sorry, your hold for {WHEN} lapsed before you replied. "
        "The time is still free: reply YES to book it."
    )
    booked = await say(client, "YES")
    assert booked["action"] == "booked"
    new = (await client.get(f"/reservations/{booked['new_reservation_id']}")).json()
    assert (new["status"], new["slot_start"]) == ("confirmed", ELEVEN)
    assert (await client.get(f"/reservations/{hold_id}")).json()["status"] == "expired"


@pytest.mark.usefixtures("clinic")
async def test_yes_after_the_hold_lapsed_and_the_time_went_offers_other_times(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await reserve(client, confirm=False, by_sms=True)
    clock.advance(timedelta(minutes=31))
    await make_reservation(client, slot_start=ELEVEN, client_id="someone-else")
    lapsed = await say(client, "yes")
    assert (lapsed["action"], lapsed["slot_free"]) == ("lapsed", False)
    assert (await texts(runtime))[-1].endswith(
        "the time has been taken. Reply R to see other times."
    )
    assert (await say(client, "R"))["action"] == "times_offered"


@pytest.mark.usefixtures("clinic")
async def test_cancel_my_appointment_asks_first_and_cancel_alone_opts_out(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    visit_id = await reserve(client, confirm=True)
    asked = await say(client, "Please cancel my appointment")
    assert (asked["action"], asked["reservation_id"]) == ("cancel_asked", visit_id)
    assert (await texts(runtime))[
        -1
    ] == f"Reply YES to cancel your visit with {WHEN}, or NO to keep it."
    assert (await say(client, "yes"))["action"] == "cancelled"
    assert (await client.get(f"/reservations/{visit_id}")).json()["status"] == "cancelled"
    other = await reserve(client, confirm=True, slot="2026-03-04T17:00:00Z")
    assert (await say(client, "CANCEL"))["action"] == "opted_out"
    assert (await client.get(f"/reservations/{other}")).json()["status"] == "confirmed"
