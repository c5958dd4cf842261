"""Cancel and change a shift before it starts, on a frozen clock: who is told, what they
may answer, and what happens without an answer."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher
from caretime.events.models import Event
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts.models import Offer
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone


@pytest.fixture
async def offered(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> str:
    """Three RNs offered s1 (starting in four hours) by SMS."""
    tenant = await default_tenant_id(runtime)
    for n in (1, 2, 3):
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    return tenant


@pytest.fixture
async def filled(offered: str, client: httpx.AsyncClient) -> str:
    assert (await _reply(client, 1, "yes"))["action"] == "assigned"
    return offered


async def _reply(client: httpx.AsyncClient, n: int, body: str) -> dict[str, str]:
    response = await client.post("/messages/inbound", json={"from": phone(n), "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, str] = response.json()
    return result


async def _notices(runtime: Runtime, n: int) -> list[str]:
    statement = select(Message.body).where(
        Message.to_phone == phone(n), Message.related_kind == "shifts.notice"
    )
    async with runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(Message.created_at))).all())


async def _events(runtime: Runtime, type_: str) -> list[Event]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(Event).where(Event.type == type_))).all())


async def test_cancelling_a_filled_shift_tells_the_assignee_only(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, filled: str
) -> None:
    response = await client.post("/shifts/s1/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    await dispatcher.run_pending()
    assert await _notices(runtime, 1) == [
        "Cancelled: the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard is cancelled. "
        "You do not need to go. Thank you!"
    ]
    assert await _notices(runtime, 2) == []
    assert (await client.post("/shifts/s1/cancel")).json()["status"] == "cancelled"
    assert len(await _notices(runtime, 1)) == 1
    [event] = await _events(runtime, "shift.cancelled")
    assert event.data["assigned_caregiver_id"] == "c1"
    assert (await _reply(client, 2, "yes"))["action"] == "unavailable"


async def test_per_policy_everyone_with_a_live_offer_hears_of_the_cancellation(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, offered: str
) -> None:
    patch = {"shifts": {"cancel_notifies_offered": True}}
    assert (await client.patch("/tenants/me/policy", json=patch)).status_code == 200
    assert (await _reply(client, 3, "no"))["action"] == "declined"
    assert (await client.post("/shifts/s1/cancel")).status_code == 200
    await dispatcher.run_pending()
    told = [n for n in (1, 2, 3) if await _notices(runtime, n)]
    assert told == [1, 2]
    assert "has been cancelled. No need to reply." in (await _notices(runtime, 1))[0]


async def test_a_filled_shift_that_has_started_cannot_be_cancelled(
    client: httpx.AsyncClient, clock: FrozenClock, filled: str
) -> None:
    clock.advance(timedelta(hours=4))
    response = await client.post("/shifts/s1/cancel")
    assert response.status_code == 409
    assert "started" in response.json()["detail"]


async def test_changing_an_open_shift_offers_it_again_with_the_new_details(
    runtime: Runtime,
    client: httpx.AsyncClient,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    offered: str,
) -> None:
    later = {"start_time": "2026-03-02T20:00:00Z", "end_time": "2026-03-03T04:00:00Z"}
    response = await client.patch("/shifts/s1", json={**later, "location": "Fremont"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["start_time"], body["location"], body["status"]) == (
        "2026-03-02T20:00:00Z",
        "Fremont",
        "open",
    )
    state = (await client.get("/shifts/s1")).json()["fanout"]
    assert (state["generation"], state["offers"]) == (2, 3)
    await dispatcher.run_pending()
    async with runtime.sessions() as session:
        texts = (
            await session.scalars(
                select(Message.body)
                .join(Offer, Offer.message_id == Message.id)
                .where(Offer.generation == 2)
            )
        ).all()
    assert set(texts) == {
        "Open RN shift Mon Mar 2, 3:00 PM–11:00 PM EST at Fremont. Reply YES to take it or NO "
        "to pass."
    }
    # The expiry moved with the start.
    clock.advance(timedelta(hours=5, seconds=-1))
    await dispatcher.run_pending()
    assert (await client.get("/shifts/s1")).json()["status"] == "open"
    clock.advance(timedelta(seconds=1))
    await dispatcher.run_pending()
    assert (await client.get("/shifts/s1")).json()["status"] == "expired"
    [updated] = await _events(runtime, "shift.updated")
    assert updated.data["changed"] == ["end_time", "location", "start_time"]


async def test_a_changed_filled_shift_is_kept_when_the_assignee_says_yes(
    runtime: Runtime,
    client: httpx.AsyncClient,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    filled: str,
) -> None:
    response = await client.patch("/shifts/s1", json={"location": "Fremont"})
    assert response.json()["reconfirm_by"] == "2026-03-02T17:00:00Z"  # two hours from now
    await dispatcher.run_pending()
    assert await _notices(runtime, 1) == [
        "Changed: your shift is now the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Fremont. "
        "Reply YES to keep it or NO to give it up, by Mon Mar 2, 12:00 PM EST."
    ]
    kept = await _reply(client, 1, "yes")
    assert kept["action"] == "confirmed"
    clock.advance(timedelta(hours=3))
    await dispatcher.run_pending()
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"], shift["reconfirm_by"]) == (
        "filled",
        "c1",
        None,
    )
    assert (await _reply(client, 1, "yes"))["action"] == "assigned"


async def test_a_change_close_to_the_start_leaves_half_the_time_to_answer(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, filled: str
) -> None:
    patch = {"start_time": "2026-03-02T16:00:00Z", "end_time": "2026-03-03T00:00:00Z"}
    response = await client.patch("/shifts/s1", json=patch)
    assert response.json()["reconfirm_by"] == "2026-03-02T15:30:00Z"
    clock.advance(timedelta(minutes=30, microseconds=-1))
    await dispatcher.run_pending()
    assert (await client.get("/shifts/s1")).json()["status"] == "filled"
    clock.advance(timedelta(microseconds=1))
    await dispatcher.run_pending()
    assert (await client.get("/shifts/s1")).json()["status"] == "open"


async def test_no_answer_releases_at_the_deadline(
    runtime: Runtime,
    client: httpx.AsyncClient,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    filled: str,
) -> None:
    assert (await client.patch("/shifts/s1", json={"location": "Fremont"})).status_code == 200
    clock.advance(timedelta(hours=2))
    await dispatcher.run_pending()
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"]) == ("open", None)
    assert shift["fanout"]["generation"] == 2
    assert "no longer yours" in (await _notices(runtime, 1))[-1]
    async with runtime.sessions() as session:
        refill = await session.scalars(select(Offer.caregiver_id).where(Offer.generation == 2))
        assert sorted(refill.all()) == ["c2", "c3"]
    timeline = (await client.get("/shifts/s1/timeline")).json()["entries"]
    [dropped] = [e for e in timeline if e["kind"] == "dropped"]
    assert (dropped["details"]["by"], dropped["caregiver_id"]) == ("no_reply", "c1")


async def test_no_to_a_change_drops_the_shift(client: httpx.AsyncClient, filled: str) -> None:
    assert (await client.patch("/shifts/s1", json={"location": "Fremont"})).status_code == 200
    assert (await _reply(client, 1, "no, that doesn't work"))["action"] == "dropped"
    assert (await client.get("/shifts/s1")).json()["status"] == "open"


async def test_notes_only_ask_nobody_anything(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, filled: str
) -> None:
    response = await client.patch("/shifts/s1", json={"notes": "door code 4411"})
    assert (response.json()["notes"], response.json()["reconfirm_by"]) == ("door code 4411", None)
    await dispatcher.run_pending()
    assert await _notices(runtime, 1) == []


@pytest.mark.parametrize(
    ("patch", "status", "where"),
    [
        ({"end_time": "2026-03-02T18:00:00Z"}, 422, "end_time"),
        ({"start_time": "2026-03-02T13:00:00Z"}, 422, "start_time"),
        ({"role_required": None}, 422, None),
        ({"colour": "blue"}, 422, None),
        ({"start_time": "tomorrow"}, 422, "start_time"),
        ({"role_required": "LPN"}, 409, None),
    ],
)
async def test_bad_changes_say_what_is_wrong(
    client: httpx.AsyncClient,
    filled: str,
    patch: dict[str, object],
    status: int,
    where: str | None,
) -> None:
    response = await client.patch("/shifts/s1", json=patch)
    assert response.status_code == status, response.text
    problem = response.json()
    if where is not None:
        assert where in str(problem["errors"][0]["loc"])
    assert "Error" not in problem["detail"]
    assert (await client.get("/shifts/s1")).json()["assigned_caregiver_id"] == "c1"


async def test_a_cancelled_shift_cannot_change(client: httpx.AsyncClient, offered: str) -> None:
    await client.post("/shifts/s1/cancel")
    response = await client.patch("/shifts/s1", json={"location": "Fremont"})
    assert response.status_code == 409
    assert (await client.patch("/shifts/none", json={"notes": "x"})).status_code == 404
