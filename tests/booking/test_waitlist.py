"""The waitlist over the API and SMS: freed times texted in join order in waves, the first
YES gets a hold and everyone else hears it is gone — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from caretime.booking.models import Appointment, WaitlistOpening
from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, make_reservation

# The clock starts at 2026-03-02T15:00Z; 4 March 11:00 New York (EST) is 16:00Z.
ELEVEN = "2026-03-04T16:00:00Z"
PHONES = [f"+1212555010{n}" for n in range(1, 5)]
OFFER = (
    "A time opened up: Dr. Jekyll on Wed Mar 4, 2026 at 11:00 EST. "
    "Reply YES to take it (first come, first served)."
)


@pytest.fixture
async def waiting(client: httpx.AsyncClient, dispatcher: Dispatcher) -> list[dict[str, Any]]:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "08:00", "end": "15:00"}
    )
    # Nobody waits yet when the day is published; then the day fills up.
    await dispatcher.run_pending()
    for start in range(13 * 60, 20 * 60, 15):
        if start != 16 * 60:
            slot = f"2026-03-04T{start // 60:02d}:{start % 60:02d}:00Z"
            held = await make_reservation(client, slot_start=slot, client_id=f"other-{start}")
            await client.post(f"/reservations/{held['id']}/confirm")
    await client.patch("/tenants/me/policy", json={"booking": {"waitlist_wave_size": 2}})
    entries = []
    for n, phone in enumerate(PHONES):
        body = {
            "client_id": f"p-{n}",
            "phone": phone,
            "provider_id": "dr-jekyll",
            "earliest": "2026-03-04T00:00:00Z",
            "latest": "2026-03-05T00:00:00Z",
        }
        response = await client.post("/waitlist", json=body)
        assert response.status_code == 201, response.text
        entries.append(response.json())
    return entries


async def offered_to(runtime: Runtime) -> list[str]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(
            select(Message.to_phone)
            .where(Message.body == OFFER)
            .order_by(Message.created_at, Message.id)
        )
        return [phone for (phone,) in rows]


async def say(client: httpx.AsyncClient, phone: str, body: str) -> dict[str, Any]:
    response = await client.post("/messages/inbound", json={"from": phone, "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_joining_reading_and_leaving(
    client: httpx.AsyncClient, waiting: list[dict[str, Any]]
) -> None:
    entry = waiting[0]
    assert {k: entry[k] for k in ("status", "provider_id", "appointment_id")} == {
        "status": "waiting",
        "provider_id": "dr-jekyll",
        "appointment_id": None,
    }
    assert (await client.get(f"/waitlist/{entry['id']}")).json() == entry
    left = await client.delete(f"/waitlist/{entry['id']}")
    assert left.json()["status"] == "removed"
    assert (await client.delete(f"/waitlist/{entry['id']}")).status_code == 200
    assert (await client.get("/waitlist/wl_nope")).status_code == 404
    bad = await client.post(
        "/waitlist",
        json={"client_id": "x", "phone": "555", "earliest": ELEVEN, "latest": ELEVEN},
    )
    assert bad.status_code == 422
    assert {e["loc"][-1] for e in bad.json()["errors"]} >= {"phone"}
    unknown = await client.post(
        "/waitlist",
        json={
            "client_id": "x",
            "phone": PHONES[0],
            "provider_id": "dr-nope",
            "earliest": ELEVEN,
            "latest": "2026-03-05T00:00:00Z",
        },
    )
    assert unknown.status_code == 404


async def test_a_freed_time_goes_out_in_join_order_in_waves_and_one_yes_wins(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    waiting: list[dict[str, Any]],
) -> None:
    visit = await make_reservation(client, slot_start=ELEVEN, client_id="someone")
    await client.post(f"/reservations/{visit['id']}/cancel")
    await dispatcher.run_pending()
    assert await offered_to(runtime) == PHONES[:2]
    clock.advance(timedelta(minutes=10))
    await dispatcher.run_pending()
    assert await offered_to(runtime) == PHONES
    won = await say(client, PHONES[3], "yes")
    assert won["action"] == "held"
    lost = await say(client, PHONES[0], "YES!")
    assert lost["action"] == "already_taken"
    hold = (await client.get(f"/reservations/{won['new_reservation_id']}")).json()
    assert (hold["status"], hold["slot_start"], hold["client_id"]) == ("held", ELEVEN, "p-3")
    entry = (await client.get(f"/waitlist/{waiting[3]['id']}")).json()
    assert (entry["status"], entry["appointment_id"]) == ("booked", hold["id"])
    assert (await say(client, PHONES[3], "yes"))["action"] == "confirmed"
    clock.advance(timedelta(minutes=10))
    await dispatcher.run_pending()
    assert len(await offered_to(runtime)) == 4  # claimed: no more waves
    async with transaction(runtime.sessions) as session:
        statuses = (await session.scalars(select(WaitlistOpening.status))).all()
    assert statuses == ["claimed"]


async def test_a_lapsed_hold_and_new_availability_free_times_too(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    waiting: list[dict[str, Any]],
) -> None:
    await make_reservation(client, slot_start=ELEVEN, client_id="someone")
    clock.advance(timedelta(minutes=30))
    await dispatcher.run_pending()  # the hold expires; its time opens
    assert await offered_to(runtime) == PHONES[:2]
    late = {
        "client_id": "late",
        "phone": "+12125550199",
        "provider_id": "dr-jekyll",
        "earliest": "2026-03-06T00:00:00Z",
        "latest": "2026-03-07T00:00:00Z",
    }
    await client.post("/waitlist", json=late)
    await make_availability(
        client, windows={"date": "2026-03-06", "start": "09:00", "end": "10:00"}
    )
    await dispatcher.run_pending()
    async with transaction(runtime.sessions) as session:
        texts = (
            await session.scalars(select(Message.body).where(Message.to_phone == late["phone"]))
        ).all()
    assert texts == [
        "A time opened up: Dr. Jekyll on Fri Mar 6, 2026 at 09:00 EST. "
        "Reply YES to take it (first come, first served)."
    ]


async def test_no_passes_and_stays_on_the_waitlist(
    client: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    waiting: list[dict[str, Any]],
) -> None:
    visit = await make_reservation(client, slot_start=ELEVEN, client_id="someone")
    await client.post(f"/reservations/{visit['id']}/cancel")
    await dispatcher.run_pending()
    assert (await say(client, PHONES[0], "no"))["action"] == "declined"
    assert (await client.get(f"/waitlist/{waiting[0]['id']}")).json()["status"] == "waiting"
    async with transaction(runtime.sessions) as session:
        held = await session.scalar(
            select(func.count()).select_from(Appointment).where(Appointment.status == "held")
        )
    assert held == 0
