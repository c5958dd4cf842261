"""Rescheduling over the API: a visit moves in one transaction, keeps its status and its
history, and stays exactly where it was when the move cannot happen — on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher
from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    make_visit_type,
    slot_starts,
)

# The clock starts at 2026-03-02T15:00Z. 4 March 09:00–12:00 New York (EST) is 14:00–17:00Z.
DAY = {"start": "2026-03-04T00:00:00Z", "end": "2026-03-05T00:00:00Z"}
NINE, TEN, ELEVEN = "2026-03-04T14:00:00Z", "2026-03-04T15:00:00Z", "2026-03-04T16:00:00Z"


@pytest.fixture
async def morning(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "09:00", "end": "12:00"}
    )


async def move(
    client: httpx.AsyncClient, reservation_id: str, slot_start: str, expect: int = 200, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/reservations/{reservation_id}/reschedule", json={"slot_start": slot_start, **extra}
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def confirmed(client: httpx.AsyncClient, slot_start: str, **extra: Any) -> dict[str, Any]:
    hold = await make_reservation(client, slot_start=slot_start, **extra)
    response = await client.post(f"/reservations/{hold['id']}/confirm")
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.usefixtures("morning")
async def test_a_confirmed_visit_moves_and_stays_confirmed(client: httpx.AsyncClient) -> None:
    visit = await confirmed(client, NINE)
    moved = await move(client, visit["id"], ELEVEN)
    assert {k: moved[k] for k in ("id", "status", "slot_start", "slot_end", "confirmed_at")} == {
        "id": visit["id"],
        "status": "confirmed",
        "slot_start": ELEVEN,
        "slot_end": "2026-03-04T16:15:00Z",
        "confirmed_at": visit["confirmed_at"],
    }
    free = await slot_starts(client, **DAY)
    assert NINE in free
    assert ELEVEN not in free
    history = (await client.get(f"/reservations/{visit['id']}/history")).json()
    rescheduled = [entry for entry in history if entry["type"] == "appointment.rescheduled"]
    assert len(rescheduled) == 1
    assert rescheduled[0]["data"] == {
        "status": "confirmed",
        "from": {
            "provider_id": "dr-jekyll",
            "slot_start": NINE,
            "slot_end": "2026-03-04T14:15:00Z",
        },
        "to": {
            "provider_id": "dr-jekyll",
            "slot_start": ELEVEN,
            "slot_end": "2026-03-04T16:15:00Z",
        },
    }
    assert rescheduled[0]["actor"].startswith("key:")


@pytest.mark.usefixtures("morning")
async def test_a_move_onto_taken_time_is_a_409_and_the_visit_stays_put(
    client: httpx.AsyncClient,
) -> None:
    await make_visit_type(client, id="long", minutes=45)
    mine = await confirmed(client, NINE, visit_type="long")
    await make_reservation(client, slot_start=ELEVEN, client_id="someone-else")
    # 10:30 + 45 minutes runs into the 11:00 visit.
    taken = await move(client, mine["id"], "2026-03-04T15:30:00Z", expect=409)
    assert taken["type"] == "urn:caretime:problem:slot-taken"
    after = (await client.get(f"/reservations/{mine['id']}")).json()
    assert (after["status"], after["slot_start"], after["slot_end"]) == (
        "confirmed",
        NINE,
        "2026-03-04T14:45:00Z",
    )
    assert NINE not in await slot_starts(client, **DAY)
    # Overlapping its own old time is fine: only other visits are in the way.
    moved = await move(client, mine["id"], "2026-03-04T14:30:00Z")
    assert moved["slot_end"] == "2026-03-04T15:15:00Z"


@pytest.mark.usefixtures("morning")
async def test_two_visits_racing_for_one_time_one_wins_the_other_is_intact(
    client: httpx.AsyncClient,
) -> None:
    first = await confirmed(client, NINE, client_id="a")
    second = await confirmed(client, TEN, client_id="b")
    responses = await asyncio.gather(
        *(
            client.post(f"/reservations/{v['id']}/reschedule", json={"slot_start": ELEVEN})
            for v in (first, second)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    loser = responses[0] if responses[0].status_code == 409 else responses[1]
    loser_visit = first if loser is responses[0] else second
    after = (await client.get(f"/reservations/{loser_visit['id']}")).json()
    assert (after["status"], after["slot_start"]) == ("confirmed", loser_visit["slot_start"])


@pytest.mark.usefixtures("morning")
@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("2026-03-03T14:00:00Z", "too-little-notice"),  # inside the 24 h notice
        ("2026-03-01T14:00:00Z", "too-little-notice"),  # in the past
        ("2026-03-04T14:05:00Z", "off-grid"),
        ("2026-03-04T18:00:00Z", "outside-availability"),  # 13:00 local, after hours
    ],
)
async def test_a_move_follows_the_same_rules_as_a_new_reservation(
    client: httpx.AsyncClient, target: str, problem: str
) -> None:
    visit = await confirmed(client, NINE)
    refused = await move(client, visit["id"], target, expect=422)
    assert refused["type"] == f"urn:caretime:problem:{problem}"
    assert (await client.get(f"/reservations/{visit['id']}")).json()["slot_start"] == NINE


@pytest.mark.usefixtures("morning")
async def test_only_held_or_confirmed_visits_move(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    cancelled = await make_reservation(client, slot_start=NINE)
    await client.post(f"/reservations/{cancelled['id']}/cancel")
    refused = await move(client, cancelled["id"], ELEVEN, expect=409)
    assert (refused["type"], refused["reservation_status"]) == (
        "urn:caretime:problem:invalid-transition",
        "cancelled",
    )
    lapsed = await make_reservation(client, slot_start=TEN, client_id="p2")
    clock.advance(timedelta(minutes=30))
    assert (await move(client, lapsed["id"], ELEVEN, expect=409))["reservation_status"] == (
        "expired"
    )
    missing = await move(client, "apt_nope", ELEVEN, expect=404)
    assert missing["type"] == "urn:caretime:problem:reservation-not-found"


@pytest.mark.usefixtures("morning")
async def test_a_hold_keeps_its_deadline_unless_policy_renews_it(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    hold = await make_reservation(client, slot_start=NINE)
    clock.advance(timedelta(minutes=20))
    kept = await move(client, hold["id"], TEN)
    assert (kept["status"], kept["expires_at"]) == ("held", hold["expires_at"])
    await client.patch("/tenants/me/policy", json={"booking": {"reschedule_renews_hold": True}})
    renewed = await move(client, hold["id"], ELEVEN)
    assert renewed["expires_at"] == "2026-03-02T15:50:00Z"
    clock.advance(timedelta(minutes=15))  # past the first deadline, before the new one
    await dispatcher.run_pending()
    assert (await client.get(f"/reservations/{hold['id']}")).json()["status"] == "held"
    clock.advance(timedelta(minutes=15))
    await dispatcher.run_pending()
    assert (await client.get(f"/reservations/{hold['id']}")).json()["status"] == "expired"


async def test_a_visit_moves_to_another_provider_with_its_visit_type(
    client: httpx.AsyncClient,
) -> None:
    for provider_id in ("dr-a", "dr-b"):
        await make_provider(client, id=provider_id)
        await make_availability(
            client,
            provider_id=provider_id,
            windows={"date": "2026-03-04", "start": "09:00", "end": "12:00"},
        )
    await make_visit_type(client, id="consult", minutes=30, provider_id="dr-a")
    visit = await confirmed(client, NINE, provider_id="dr-a", visit_type="consult")
    absent = await move(client, visit["id"], TEN, provider_id="dr-b", expect=404)
    assert absent["type"] == "urn:caretime:problem:visit-type-not-found"
    await make_visit_type(client, id="consult", minutes=45, provider_id="dr-b")
    moved = await move(client, visit["id"], TEN, provider_id="dr-b")
    assert (moved["provider_id"], moved["slot_end"]) == ("dr-b", "2026-03-04T15:45:00Z")
    assert NINE in await slot_starts(client, **DAY, provider_id="dr-a")


@pytest.mark.usefixtures("morning")
async def test_a_move_within_a_full_day_is_allowed_into_a_full_day_is_not(
    client: httpx.AsyncClient,
) -> None:
    await make_availability(
        client, windows={"date": "2026-03-05", "start": "09:00", "end": "12:00"}
    )
    await client.patch("/providers/dr-jekyll", json={"max_per_day": 1})
    today = await confirmed(client, NINE)
    await confirmed(client, "2026-03-05T14:00:00Z", client_id="p2")
    await move(client, today["id"], ELEVEN)
    full = await move(client, today["id"], "2026-03-05T15:00:00Z", expect=409)
    assert full["type"] == "urn:caretime:problem:day-full"
