"""Every catalogue type is emitted once per change, where the change happens, with who acted:
driven through the API, the dashboard, inbound SMS and timers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from tests.booking.support import make_availability, make_provider, make_reservation
from tests.conftest import Database
from tests.support import TEST_API_KEY
from tests.web.support import sign_in

NO_ANSWER = "212-555-0109"  # the simulator leaves numbers ending in 9 unanswered


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
                    simulator_no_answer_digits="9")  # fmt: skip


async def trail(client: httpx.AsyncClient, path: str) -> list[tuple[str, str]]:
    """(type, actor) of each event of a subject, in order."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return [(e["type"], e["actor"]) for e in response.json()["items"]]


async def feed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/events", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def key_actor(client: httpx.AsyncClient) -> str:
    keys = (await client.get("/tenants/me/keys")).json()
    items = keys["items"] if isinstance(keys, dict) else keys
    return f"key:{items[0]['id']}"


async def run(clock: FrozenClock, dispatcher: Dispatcher, **delta: int) -> None:
    clock.advance(timedelta(**delta))
    await dispatcher.run_pending()


async def test_a_batch_of_calls_from_scheduled_to_batch_completed(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    me = await key_actor(client)
    items = [{"name": "Ann", "phone": "212-555-0100", "scheduled": "2026-03-02T15:10:00Z"},
             {"name": "Bob", "phone": "212-555-0101", "scheduled": "2026-03-02T15:10:00Z"},
             {"name": "Nobody", "phone": "not a phone"}]  # fmt: skip
    result = (await client.post("/schedule", json=items)).json()
    ann, bob = result[0]["scheduled_task_id"], result[1]["scheduled_task_id"]
    assert (await client.delete(f"/calls/{bob}")).status_code == 200
    assert (await client.delete(f"/calls/{bob}")).status_code == 200  # a retry changes nothing
    for delta in ({"minutes": 10}, {"seconds": 1}, {"seconds": 5}, {"seconds": 30}):
        await run(clock, dispatcher, **delta)
    assert await trail(client, f"/calls/{bob}/events") == [
        ("call.scheduled", me), ("call.cancelled", me)]  # fmt: skip
    assert await trail(client, f"/calls/{ann}/events") == [
        ("call.scheduled", me),
        ("call.started", "system"),
        ("call.completed", "system"),
    ]
    (completed,) = await feed(client, type="batch.completed")
    assert completed["subject"]["id"] == (await client.get(f"/calls/{ann}")).json()["batch_id"]
    assert completed["actor"] == "system"
    scheduled = (await feed(client, type="call.scheduled"))[0]["data"]
    assert scheduled["status"] == "scheduled"
    # No number in any spelling; a short fragment like "212" could match a random id.
    assert "5550100" not in str(scheduled)
    assert "555-0100" not in str(scheduled)
    assert "Ann" not in str(await feed(client))  # PHI-minimal: no names


async def test_an_unanswered_call_expires_and_an_opted_out_one_fails(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    unanswered = (await client.post("/calls", json={"name": "A", "phone": NO_ANSWER,
                                                    "max_attempts": 1})).json()["id"]  # fmt: skip
    # Scheduled first: a number already opted out is refused at scheduling (issue 16).
    opted_out = (await client.post("/calls", json={"name": "B", "phone": "212-555-0102"})).json()
    stop = await client.post("/messages/inbound", json={"from": "212-555-0102", "body": "STOP"})
    assert stop.json()["action"] == "opted_out"
    again = await client.post("/messages/inbound", json={"from": "212-555-0102", "body": "STOP"})
    assert again.status_code == 200
    for delta in ({"seconds": 0}, {"seconds": 1}, {"seconds": 30}):
        await run(clock, dispatcher, **delta)
    assert [t for t, _ in await trail(client, f"/calls/{unanswered}/events")] == [
        "call.scheduled", "call.started", "call.expired"]  # fmt: skip
    assert [t for t, _ in await trail(client, f"/calls/{opted_out['id']}/events")] == [
        "call.scheduled", "call.started", "call.failed"]  # fmt: skip
    (event,) = await feed(client, type="message.*")
    assert (event["type"], event["subject"]) == (
        "message.opted_out", {"kind": "phone", "id": "+12125550102"})  # fmt: skip
    assert event["actor"] == f"inbound:{event['data']['message_id']}"
    await client.post("/messages/inbound", json={"from": "212-555-0102", "body": "START"})
    assert [e["type"] for e in await feed(client, type="message.*")] == [
        "message.opted_out", "message.opted_in"]  # fmt: skip


async def test_appointments_held_confirmed_cancelled_denied_expired(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    me = await key_actor(client)
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )
    confirmed = await make_reservation(client, slot_start="2026-03-03T16:00:00Z")
    denied = await make_reservation(client, slot_start="2026-03-03T16:15:00Z")
    expired = await make_reservation(client, slot_start="2026-03-03T16:30:00Z")
    await client.post(f"/reservations/{confirmed['id']}/confirm")
    await client.post(f"/reservations/{confirmed['id']}/confirm")  # a retry: nothing new
    await client.post(f"/reservations/{confirmed['id']}/cancel")
    await client.patch(f"/reservations/{denied['id']}", json={"status": "denied"})
    await run(clock, dispatcher, minutes=31)
    assert await trail(client, f"/reservations/{confirmed['id']}/events") == [
        ("appointment.held", me),
        ("appointment.confirmed", me),
        ("appointment.cancelled", me),
    ]
    assert await trail(client, f"/reservations/{denied['id']}/events") == [
        ("appointment.held", me), ("appointment.denied", me)]  # fmt: skip
    assert await trail(client, f"/reservations/{expired['id']}/events") == [
        ("appointment.held", me), ("appointment.expired", "system")]  # fmt: skip
    held = (await feed(client, type="appointment.held"))[0]["data"]
    assert held["provider_id"] == "dr-jekyll"
    assert held["status"] == "held"


async def test_the_dashboard_acts_as_its_session_key(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    created = await anon_client.post("/ui/calls", data={"name": "Ann", "phone": "212-555-0100",
                                                        "csrf_token": token})  # fmt: skip
    call_id = str(created.headers["location"]).rsplit("/", 1)[1]
    await anon_client.post(f"/ui/calls/{call_id}/cancel", data={"csrf_token": token})
    anon_client.headers["Authorization"] = f"Bearer {TEST_API_KEY}"
    me = await key_actor(anon_client)
    dashboard = me.replace("key:", "dashboard:")
    assert await trail(anon_client, f"/calls/{call_id}/events") == [
        ("call.scheduled", dashboard), ("call.cancelled", dashboard)]  # fmt: skip


def counts(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["type"] for e in events)


async def _caregiver(client: httpx.AsyncClient, id_: str, phone: str) -> None:
    body = {"id": id_, "name": id_, "phone": phone, "roles": ["RN"]}
    assert (await client.post("/caregivers", json=body)).status_code == 201


async def _shift(client: httpx.AsyncClient, id_: str, *, starts: str) -> None:
    body = {"id": id_, "role_required": "RN", "start_time": starts,
            "end_time": "2026-03-03T03:00:00Z"}  # fmt: skip
    assert (await client.post("/shifts", json=body)).status_code == 201


async def test_shifts_fanout_filled_unfilled_cancelled_expired(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    me = await key_actor(client)
    await _caregiver(client, "c1", "+16175550101")
    for shift_id in ("taken", "left", "dropped"):
        await _shift(client, shift_id, starts="2026-03-02T19:00:00Z")
    await client.post("/shifts/taken/fanout")
    reply = await client.post(
        "/messages/inbound", json={"from": "+16175550101", "body": "YES", "shift_id": "taken"}
    )
    assert reply.json()["action"] == "assigned"
    await client.post("/shifts/left/fanout")
    await client.post("/shifts/dropped/cancel")
    await client.post("/shifts/dropped/cancel")  # already cancelled: nothing new
    await run(clock, dispatcher, minutes=10)  # the voice round: the ladder is spent
    await run(clock, dispatcher, hours=4)  # "left" starts unfilled
    filled = await trail(client, "/shifts/taken/events")
    assert [t for t, _ in filled] == ["shift.fanout_started", "shift.filled"]
    assert filled[0][1] == me
    assert filled[1][1].startswith("inbound:msg_")
    assert await trail(client, "/shifts/left/events") == [
        ("shift.fanout_started", me),
        ("shift.unfilled", "system"),
        ("shift.expired", "system"),
    ]
    assert await trail(client, "/shifts/dropped/events") == [("shift.cancelled", me)]
    (assigned,) = await feed(client, type="shift.filled")
    assert assigned["data"]["assigned_caregiver_id"] == "c1"
