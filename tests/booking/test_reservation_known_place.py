"""A reservation at a place this process read lately is checked on what was read and written
only if nothing it was checked on has changed since (booking/reserving.py). Each change
below is made straight in the database, as another process would make it, after a first
reservation made the place known; the next reservation sees it — on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from caretime.booking import placing
from caretime.booking.models import AvailabilityRule, Provider, VisitType
from caretime.db import transaction
from caretime.events.webhooks.models import WebhookDelivery
from caretime.runtime import Runtime
from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    make_visit_type,
)

# The clock starts at 2026-03-02T15:00Z; 3 March 08:00–15:00 New York is 13:00–20:00Z.
FIRST, NEXT = "2026-03-03T16:00:00Z", "2026-03-03T17:00:00Z"


@pytest.fixture
async def known_place(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )
    await make_visit_type(client, id="consult", minutes=30)
    await make_reservation(client, slot_start=FIRST)
    await make_reservation(client, slot_start="2026-03-03T18:00:00Z", visit_type="consult")


async def _change(runtime: Runtime, statement: Any) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(statement)


@pytest.fixture
def reads_first(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The providers of the reservations that were read first (not held in one statement)."""
    read: list[str] = []
    original = placing.read_for_request

    async def counted(
        reader: Any, tenant_id: str, key_id: Any, provider_id: str, *args: Any
    ) -> Any:
        read.append(provider_id)
        return await original(reader, tenant_id, key_id, provider_id, *args)

    monkeypatch.setattr(placing, "read_for_request", counted)
    return read


@pytest.mark.usefixtures("known_place")
async def test_the_next_reservation_is_held_as_the_first(
    client: httpx.AsyncClient, reads_first: list[str]
) -> None:
    hold = await make_reservation(client, slot_start=NEXT)
    assert (hold["status"], hold["slot_end"]) == ("held", "2026-03-03T17:15:00Z")
    assert reads_first == []  # held in one statement, on what the first one read
    taken = await make_reservation(client, slot_start=NEXT, expect=409)
    assert taken["type"] == "urn:caretime:problem:slot-taken"
    assert len(reads_first) == 1  # a refusal is said on a fresh read


@pytest.mark.usefixtures("known_place")
async def test_availability_removed_since_is_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _change(runtime, delete(AvailabilityRule))
    refused = await make_reservation(client, slot_start=NEXT, expect=422)
    assert refused["type"] == "urn:caretime:problem:outside-availability"


@pytest.mark.usefixtures("known_place")
async def test_a_day_limit_set_since_is_kept(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await _change(runtime, update(Provider).values(max_per_day=2))
    refused = await make_reservation(client, slot_start=NEXT, expect=409)
    assert refused["type"] == "urn:caretime:problem:day-full"


@pytest.mark.usefixtures("known_place")
async def test_a_visit_type_changed_since_gives_its_new_length(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _change(runtime, update(VisitType).values(minutes=45))
    hold = await make_reservation(client, slot_start=NEXT, visit_type="consult")
    assert hold["slot_end"] == "2026-03-03T17:45:00Z"


@pytest.mark.usefixtures("known_place")
async def test_a_policy_changed_since_gives_its_new_hold(client: httpx.AsyncClient) -> None:
    changed = await client.patch("/tenants/me/policy", json={"booking": {"hold": "10m"}})
    assert changed.status_code == 200, changed.text
    hold = await make_reservation(client, slot_start=NEXT)
    assert hold["expires_at"] == "2026-03-02T15:10:00Z"


@pytest.mark.usefixtures("known_place")
async def test_an_endpoint_subscribed_since_is_sent_the_hold(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    endpoint = {"url": "https://example.com/h", "event_types": ["appointment.held"]}
    assert (await client.post("/webhooks/endpoints", json=endpoint)).status_code == 201
    await make_reservation(client, slot_start=NEXT)
    async with transaction(runtime.sessions) as session:
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert deliveries == 1


@pytest.mark.usefixtures("known_place")
async def test_an_idempotency_key_is_answered_with_its_first_hold(
    client: httpx.AsyncClient,
) -> None:
    first = await make_reservation(client, slot_start=NEXT, idempotency_key="k-1")
    again = await make_reservation(client, slot_start=NEXT, idempotency_key="k-1")
    assert again["id"] == first["id"]
    other = await make_reservation(
        client, slot_start="2026-03-03T19:00:00Z", idempotency_key="k-1", expect=422
    )
    assert other["type"] == "urn:caretime:problem:idempotency-key-reused"
