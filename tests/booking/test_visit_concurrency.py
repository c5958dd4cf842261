"""Real concurrent HTTP against a live server on PostgreSQL: visits of different lengths
never overlap, whatever order their reservations race in."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from caretime.booking.models import Appointment
from caretime.db import transaction
from caretime.runtime import Runtime
from tests.booking.test_concurrency import _client
from tests.conftest import LiveServer

pytestmark = pytest.mark.postgres_only


async def test_100_concurrent_overlapping_visits_of_15_30_45_minutes_never_overlap(
    live_server: LiveServer, runtime: Runtime
) -> None:
    day = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    rng = random.Random(15)
    async with _client(live_server, 100) as http:
        await http.post("/providers", json={"id": "dr-one", "name": "Dr", "tz": "UTC"})
        await http.post(
            "/providers/dr-one/availability", json={"date": day, "start": "09:00", "end": "11:00"}
        )
        for minutes in (15, 30, 45):
            body = {"id": f"v{minutes}", "name": f"{minutes} min", "minutes": minutes}
            assert (await http.post("/providers/dr-one/visit-types", json=body)).status_code == 201

        async def attempt(n: int) -> int:
            minute = rng.randrange(0, 105, 15)
            body = {
                "provider_id": "dr-one",
                "slot_start": f"{day}T{9 + minute // 60:02d}:{minute % 60:02d}:00Z",
                "client_id": f"patient-{n}",
                "visit_type": f"v{rng.choice((15, 30, 45))}",
            }
            return (await http.post("/reservations", json=body)).status_code

        statuses = Counter(await asyncio.gather(*(attempt(n) for n in range(100))))
    assert set(statuses) <= {201, 409, 422}  # 422: a long visit drawn too late to fit
    assert statuses[201] >= 3
    assert statuses[409] >= 50
    other = aliased(Appointment)
    active = Appointment.status.in_(("held", "confirmed"))
    async with transaction(runtime.sessions) as session:
        overlaps = await session.scalar(
            select(func.count())
            .select_from(Appointment)
            .join(
                other,
                and_(
                    other.provider_id == Appointment.provider_id,
                    other.id < Appointment.id,
                    other.status.in_(("held", "confirmed")),
                    other.occupied_start < Appointment.occupied_end,
                    other.occupied_end > Appointment.occupied_start,
                ),
            )
            .where(active)
        )
        held = await session.scalar(select(func.count()).select_from(Appointment).where(active))
    assert overlaps == 0
    assert held == statuses[201]
