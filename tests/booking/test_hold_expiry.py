"""Holds expire by one sweep job per due minute (booking.expire_holds), and a time held only
by a hold past its deadline is taken over by the next reservation, which expires that hold
first: each expired hold is recorded once, whoever expired it. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from caretime.booking.models import Appointment
from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, make_reservation

# The clock starts at 2026-03-02T15:00Z; 3 March 08:00–15:00 New York (EST) is 13:00–20:00Z.
SLOTS = ["2026-03-03T16:00:00Z", "2026-03-03T16:15:00Z", "2026-03-03T16:30:00Z"]


@pytest.fixture
async def booked_day(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )


async def _expired_events(client: httpx.AsyncClient, reservation_id: str) -> int:
    history = (await client.get(f"/reservations/{reservation_id}/history")).json()
    return sum(entry["type"] == "appointment.expired" for entry in history)


async def _sweep_jobs(runtime: Runtime) -> int:
    async with transaction(runtime.sessions) as session:
        count = await session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "booking.expire_holds")
        )
    return int(count or 0)


@pytest.mark.usefixtures("booked_day")
async def test_holds_due_in_one_minute_share_one_sweep_that_expires_each(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, runtime: Runtime
) -> None:
    holds = []
    for slot in SLOTS:  # deadlines 15:30:10, 15:30:30 and 15:30:50
        clock.advance(timedelta(seconds=10 if not holds else 20))
        holds.append(await make_reservation(client, slot_start=slot))
    assert await _sweep_jobs(runtime) == 1
    clock.advance(timedelta(minutes=30))  # 15:30:50: past every deadline, before the sweep
    for hold in holds:
        shown = (await client.get(f"/reservations/{hold['id']}")).json()
        assert shown["status"] == "expired"  # readers see the deadline, not the sweep
    assert await dispatcher.run_pending() == 0
    clock.advance(timedelta(seconds=10))  # 15:31:00
    assert await dispatcher.run_pending() == 1
    async with transaction(runtime.sessions) as session:
        stored = await session.scalars(
            select(Appointment.status).where(Appointment.id.in_([h["id"] for h in holds]))
        )
        assert list(stored) == ["expired"] * 3
    assert [await _expired_events(client, hold["id"]) for hold in holds] == [1, 1, 1]


@pytest.mark.usefixtures("booked_day")
async def test_a_lapsed_hold_is_taken_over_and_recorded_as_expired_once(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    lapsed = await make_reservation(client, slot_start=SLOTS[0])
    clock.advance(timedelta(minutes=30))
    newer = await make_reservation(client, slot_start=SLOTS[0], client_id="patient-2")
    assert newer["status"] == "held"
    assert await _expired_events(client, lapsed["id"]) == 1
    await dispatcher.run_pending()  # the lapsed hold's sweep finds it expired already
    assert await _expired_events(client, lapsed["id"]) == 1
    taken = await client.post(
        "/reservations",
        json={"provider_id": "dr-jekyll", "slot_start": SLOTS[0], "client_id": "patient-3"},
    )
    assert (taken.status_code, taken.json()["type"]) == (409, "urn:caretime:problem:slot-taken")
