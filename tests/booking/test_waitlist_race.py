"""Real concurrent HTTP against a live server on PostgreSQL: 50 waitlisted patients answering
YES to one freed time at once give exactly one hold."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from caretime.booking.models import Appointment, WaitlistOpening
from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.booking.test_concurrency import _client
from tests.conftest import LiveServer

pytestmark = pytest.mark.postgres_only


async def test_50_waitlisted_patients_answering_yes_at_once_give_one_hold(
    live_server: LiveServer, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    day = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    slot = f"{day}T10:00:00Z"
    phones = [f"+1212555{n:04d}" for n in range(50)]
    async with _client(live_server, 50) as http:
        await http.post("/providers", json={"id": "dr-one", "name": "Dr", "tz": "UTC"})
        window = {"date": day, "start": "10:00", "end": "10:15"}
        await http.post("/providers/dr-one/availability", json=window)
        # Everyone is offered at once, at any hour of the day this test runs.
        policy = {"waitlist_wave_size": 50, "quiet_hours": {"start": "00:00", "end": "00:00"}}
        await http.patch("/tenants/me/policy", json={"booking": policy})
        visit = await http.post(
            "/reservations", json={"provider_id": "dr-one", "slot_start": slot, "client_id": "x"}
        )
        for n, phone in enumerate(phones):
            entry = {
                "client_id": f"p-{n}",
                "phone": phone,
                "earliest": f"{day}T00:00:00Z",
                "latest": f"{day}T23:00:00Z",
            }
            assert (await http.post("/waitlist", json=entry)).status_code == 201
        await http.post(f"/reservations/{visit.json()['id']}/cancel")
        clock.set(datetime.now(UTC))  # the server runs on the system clock
        await dispatcher.run_pending()

        async def yes(phone: str) -> str:
            response = await http.post("/messages/inbound", json={"from": phone, "body": "YES"})
            assert response.status_code == 200, response.text
            action: str = response.json()["action"]
            return action

        actions = Counter(await asyncio.gather(*(yes(phone) for phone in phones)))
    assert actions == {"held": 1, "already_taken": 49}
    async with transaction(runtime.sessions) as session:
        holds = await session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.slot_start == datetime.fromisoformat(slot), Appointment.status == "held"
            )
        )
        openings = (await session.scalars(select(WaitlistOpening.status))).all()
    assert holds == 1
    assert openings == ["claimed"]
