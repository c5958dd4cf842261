"""Real concurrent HTTP against a live server on PostgreSQL: the unique index holds."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from caretime.booking.models import Appointment
from caretime.db import transaction
from caretime.runtime import Runtime
from tests.conftest import LiveServer
from tests.support import TEST_API_KEY, bearer

pytestmark = pytest.mark.postgres_only


def _future_days(count: int) -> list[str]:
    """Dates well beyond the 24 h notice (the live server runs on the system clock)."""
    first = datetime.now(UTC).date() + timedelta(days=30)
    return [(first + timedelta(days=n)).isoformat() for n in range(count)]


async def _provider(http: httpx.AsyncClient, provider_id: str, days: list[str]) -> list[str]:
    created = await http.post("/providers", json={"id": provider_id, "name": "Dr", "tz": "UTC"})
    assert created.status_code == 201, created.text
    windows = [{"date": day, "start": "00:00", "end": "24:00"} for day in days]
    added = await http.post(f"/providers/{provider_id}/availability", json=windows)
    assert added.status_code == 200, added.text
    return [f"{day}T{m // 60:02d}:{m % 60:02d}:00Z" for day in days for m in range(0, 1440, 15)]


def _client(live_server: LiveServer, connections: int) -> httpx.AsyncClient:
    # As many connections as concurrent requests: none idles long enough for the server to
    # close it under a request about to reuse it.
    return httpx.AsyncClient(
        base_url=live_server.url,
        headers=bearer(TEST_API_KEY),
        limits=httpx.Limits(max_connections=connections),
        timeout=60,
    )


async def test_200_concurrent_reservations_of_one_slot_yield_one_hold(
    live_server: LiveServer,
) -> None:
    async with _client(live_server, 200) as http:
        slot = (await _provider(http, "dr-one", _future_days(1)))[40]

        async def attempt(n: int) -> int:
            body = {"provider_id": "dr-one", "slot_start": slot, "client_id": f"patient-{n}"}
            return (await http.post("/reservations", json=body)).status_code

        statuses = Counter(await asyncio.gather(*(attempt(n) for n in range(200))))
    assert statuses == {201: 1, 409: 199}


async def test_concurrent_retries_with_one_idempotency_key_get_one_hold(
    live_server: LiveServer,
) -> None:
    async with _client(live_server, 20) as http:
        slot = (await _provider(http, "dr-one", _future_days(1)))[40]
        body = {"provider_id": "dr-one", "slot_start": slot, "client_id": "patient-1"}
        key = {"Idempotency-Key": "retry-1"}
        responses = await asyncio.gather(
            *(http.post("/reservations", json=body, headers=key) for _ in range(20))
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1


async def test_a_mixed_storm_never_double_books(live_server: LiveServer, runtime: Runtime) -> None:
    rng = random.Random(6)
    async with _client(live_server, 32) as http:
        slots = []
        for n in range(4):
            slots += [(f"dr-{n}", s) for s in await _provider(http, f"dr-{n}", _future_days(3))]
        slots = slots[:1000]
        limit = asyncio.Semaphore(32)
        follow_ups = iter(range(100))  # at most 100 holds are freed again
        statuses: Counter[int | str] = Counter()

        async def reserve(n: int) -> None:
            provider_id, slot = rng.choice(slots)
            body = {"provider_id": provider_id, "slot_start": slot, "client_id": f"p-{n}"}
            key = {"Idempotency-Key": f"storm-{n}"}
            async with limit:
                response = await http.post("/reservations", json=body, headers=key)
                statuses[response.status_code] += 1
                if response.status_code == 201 and next(follow_ups, None) is not None:
                    outcome = await _follow_up(http, response.json()["id"], rng.choice(_FOLLOW_UPS))
                    statuses[outcome] += 1

        await asyncio.gather(*(reserve(n) for n in range(1200)))
    assert set(statuses) <= {201, 409, "confirmed", "cancelled", "denied"}
    # Pigeonhole: 1,000 slots, at most 100 freed, so at least 100 of 1,200 attempts lost.
    assert statuses[409] >= 100
    async with transaction(runtime.sessions) as session:  # same database, this loop
        doubled = await session.execute(
            select(Appointment.provider_id, Appointment.slot_start)
            .where(Appointment.status.in_(("held", "confirmed")))
            .group_by(Appointment.provider_id, Appointment.slot_start)
            .having(func.count() > 1)
        )
        assert doubled.all() == []
        active = await session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(Appointment.status.in_(("held", "confirmed")))
        )
    assert active == statuses[201] - statuses["cancelled"] - statuses["denied"]


_FOLLOW_UPS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "confirm", None),
    ("POST", "cancel", None),
    ("PATCH", "", {"status": "denied"}),
]


async def _follow_up(
    http: httpx.AsyncClient, reservation_id: str, how: tuple[str, str, dict[str, Any] | None]
) -> str:
    method, action, body = how
    url = f"/reservations/{reservation_id}" + (f"/{action}" if action else "")
    response = await http.request(method, url, json=body)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status
