"""Calls carried out end to end with the simulator under a frozen clock."""

from datetime import timedelta

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.support import TEST_API_KEY

NO_ANSWER = "212-555-0109"  # the simulator leaves numbers ending in 9 unanswered


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        api_key=TEST_API_KEY,
        workers=0,
        simulator_no_answer_digits="9",
    )


async def create(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post("/calls", json={"name": "Ann", "phone": "212-555-0100", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def step(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, call_id: str, **delta
) -> dict:
    clock.advance(timedelta(**delta))
    await dispatcher.run_pending()
    return (await client.get(f"/calls/{call_id}")).json()


async def rang(client: httpx.AsyncClient, phone: str) -> int:
    response = await client.get("/simulator/messages", params={"to": phone, "channel": "voice"})
    return len(response.json()["items"])


async def test_scheduled_ringing_in_progress_completed(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, scheduled="2026-03-02T15:10:00Z")
    statuses = [(await step(client, clock, dispatcher, call["id"], minutes=9))["status"]]
    for delta in ({"minutes": 1}, {"seconds": 1}, {"seconds": 5}, {"seconds": 30}):
        statuses.append((await step(client, clock, dispatcher, call["id"], **delta))["status"])
    assert statuses == ["scheduled", "dispatching", "ringing", "in_progress", "completed"]
    final = (await client.get(f"/calls/{call['id']}")).json()
    assert (final["attempts"], final["outcome"]) == (1, "completed")
    (attempt,) = final["attempt_history"]
    assert [h["status"] for h in attempt["history"]] == [
        "dispatching", "ringing", "in_progress", "completed"]  # fmt: skip
    assert await rang(client, "212-555-0100") == 1


async def test_no_answer_is_retried_at_the_next_allowed_time_then_expires(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, phone=NO_ANSWER, max_attempts=2, retry_delay="15m")
    assert (await step(client, clock, dispatcher, call["id"], seconds=0))["status"] == "dispatching"
    assert (await step(client, clock, dispatcher, call["id"], seconds=1))["status"] == "ringing"
    retried = await step(client, clock, dispatcher, call["id"], seconds=30)
    # No answer at 15:00:31; 15 minutes later, rounded up to a whole minute.
    assert (retried["status"], retried["attempts"], retried["outcome"]) == (
        "scheduled", 1, "no_answer")  # fmt: skip
    assert retried["scheduled"] == "2026-03-02T15:16:00Z"
    await step(client, clock, dispatcher, call["id"], minutes=15, seconds=29)
    assert (await step(client, clock, dispatcher, call["id"], seconds=1))["status"] == "ringing"
    ended = await step(client, clock, dispatcher, call["id"], seconds=30)
    assert (ended["status"], ended["attempts"], ended["outcome"]) == ("expired", 2, "no_answer")
    assert await rang(client, NO_ANSWER) == 2


async def test_a_retry_after_the_window_closes_waits_for_the_next_window(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, phone=NO_ANSWER, scheduled="2026-03-02T21:55:00Z")
    await step(client, clock, dispatcher, call["id"], hours=6, minutes=55)
    await step(client, clock, dispatcher, call["id"], seconds=1)
    retried = await step(client, clock, dispatcher, call["id"], seconds=30)
    # 16:56 in New York + 15 minutes is past 17:00: the next window opens Tuesday 09:00.
    assert (retried["status"], retried["scheduled"]) == ("scheduled", "2026-03-03T14:00:00Z")


async def test_a_cancelled_call_never_rings(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, scheduled="2026-03-02T15:30:00Z")
    await client.delete(f"/calls/{call['id']}")
    final = await step(client, clock, dispatcher, call["id"], hours=1)
    assert final["status"] == "cancelled"
    assert await rang(client, "212-555-0100") == 0


async def test_a_rescheduled_call_rings_at_its_new_time_only(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, scheduled="2026-03-02T15:30:00Z")
    await client.patch(f"/calls/{call['id']}", json={"scheduled": "2026-03-02T16:00:00Z"})
    assert (await step(client, clock, dispatcher, call["id"], minutes=45))["status"] == "scheduled"
    assert await rang(client, "212-555-0100") == 0
    assert (await step(client, clock, dispatcher, call["id"], minutes=15))[
        "status"
    ] == "dispatching"


async def test_a_call_whose_window_passed_while_down_is_replanned_not_fired_late(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, scheduled="2026-03-02T21:50:00Z")
    # Nothing ran from 15:00 until 22:30 UTC (17:30 in New York, after the window).
    final = await step(client, clock, dispatcher, call["id"], hours=7, minutes=30)
    assert (final["status"], final["scheduled"], final["attempts"]) == (
        "scheduled", "2026-03-03T14:00:00Z", 0)  # fmt: skip
    assert await rang(client, "212-555-0100") == 0


async def test_dispatch_now_rings_at_once(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client, scheduled="2026-03-03T15:00:00Z")
    await client.post(f"/calls/{call['id']}/dispatch")
    assert (await step(client, clock, dispatcher, call["id"], seconds=0))["status"] == "dispatching"
    assert (await step(client, clock, dispatcher, call["id"], seconds=1))["status"] == "ringing"


async def test_a_batch_is_carried_out(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, runtime: Runtime
) -> None:
    items = [{"name": f"P{i}", "phone": f"212-555-01{i:02d}"} for i in range(10)]
    batch = (await client.post("/outreach/batches", json={"items": items})).json()
    clock.advance(timedelta(minutes=1))
    for _ in range(4):
        await dispatcher.run_pending()
        clock.advance(timedelta(seconds=20))
    fetched = (await client.get(f"/outreach/batches/{batch['id']}")).json()
    assert fetched["calls_by_status"] == {"completed": 9, "scheduled": 1}  # ...09 had no answer


async def test_a_second_call_to_a_capped_contact_waits_for_the_next_day(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    await client.patch("/tenants/me/policy", json={"calling": {"max_attempts_per_day": 1}})
    first = await create(client)
    second = await create(client, scheduled="2026-03-02T15:30:00Z", purpose="follow-up")
    assert (await step(client, clock, dispatcher, first["id"], seconds=1))["attempts"] == 1
    final = await step(client, clock, dispatcher, second["id"], minutes=30)
    assert (final["status"], final["scheduled"], final["attempts"]) == (
        "scheduled", "2026-03-03T14:00:00Z", 0)  # fmt: skip


async def test_a_number_that_texted_stop_after_scheduling_is_never_called(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = await create(client)
    reply = await client.post("/messages/inbound", json={"from": "212-555-0100", "body": "STOP"})
    assert reply.json()["action"] == "opted_out"
    final = await step(client, clock, dispatcher, call["id"], seconds=0)
    assert final["status"] == "failed"
    assert final["outcome"].startswith("suppressed: ")
    assert await rang(client, "212-555-0100") == 0
