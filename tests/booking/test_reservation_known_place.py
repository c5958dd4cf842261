"""A reservation at a place this process read lately is checked on what was read and written
only if nothing it was checked on has changed since (booking/reserving.py). Each change
below is made straight in the database, as another process would make it, after a first
reservation made the place known; the next reservation sees it — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from caretime.booking import placing
from caretime.booking.models import AvailabilityRule, Provider, VisitType
from caretime.db import create_engine, transaction
from caretime.events.webhooks.models import WebhookDelivery, WebhookEndpoint
from caretime.runtime import Runtime
from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    make_visit_type,
)
from tests.conftest import Database

# The clock starts at 2026-03-02T15:00Z; 3 March 08:00–15:00 New York is 13:00–20:00Z.
FIRST, NEXT = "2026-03-03T16:00:00Z", "2026-03-03T17:00:00Z"


@pytest.fixture
async def known_place(client: httpx.AsyncClient) -> None:
    await _make_known_place(client)


async def _make_known_place(client: httpx.AsyncClient) -> None:
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
async def test_a_time_outside_the_known_windows_is_refused(
    client: httpx.AsyncClient, reads_first: list[str]
) -> None:
    """The place's windows are kept with it; a start they do not allow is said on a read."""
    held = await make_reservation(client, slot_start="2026-03-03T19:45:00Z")  # 14:45 local
    assert (held["status"], reads_first) == ("held", [])
    late = await make_reservation(client, slot_start="2026-03-03T20:00:00Z", expect=422)
    assert late["type"] == "urn:caretime:problem:outside-availability"
    assert reads_first == ["dr-jekyll"]


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


# Each write below is made on a connection of another engine (as another process would
# make it), straight in the database: migration 0024's triggers, not the code that wrote,
# must move the place's number on, so the next reservation reads afresh.
_NOW = datetime(2026, 3, 2, 15, tzinfo=UTC)
_QUIET = "wh-quiet"  # an endpoint that does not want appointment.held


async def _tenant(connection: AsyncConnection) -> str:
    tenant_id: str = (await connection.execute(select(Provider.tenant_id))).scalar_one()
    return tenant_id


async def _provider_renamed(connection: AsyncConnection) -> None:
    await connection.execute(update(Provider).values(name="Dr. Hyde"))


async def _provider_made_again(connection: AsyncConnection) -> None:
    tenant_id = await _tenant(connection)
    await connection.execute(delete(Provider))
    await connection.execute(
        insert(Provider).values(tenant_id=tenant_id, id="dr-jekyll", name="Dr. Jekyll",
                                tz="America/New_York", created_at=_NOW)
    )  # fmt: skip


async def _rule_added(connection: AsyncConnection) -> None:
    await connection.execute(
        insert(AvailabilityRule).values(
            tenant_id=await _tenant(connection), id="rule-new", provider_id="dr-jekyll",
            kind="add", day=date(2026, 3, 9), weekdays=0, start_minute=480, end_minute=600,
            created_at=_NOW,
        )
    )  # fmt: skip


async def _rule_changed(connection: AsyncConnection) -> None:
    await connection.execute(update(AvailabilityRule).values(end_minute=900))


async def _rule_deleted(connection: AsyncConnection) -> None:
    await connection.execute(delete(AvailabilityRule))


async def _visit_type_added(connection: AsyncConnection) -> None:
    await connection.execute(
        insert(VisitType).values(
            tenant_id=await _tenant(connection), provider_id="dr-jekyll", id="long", name="long",
            minutes=60, buffer_before=0, buffer_after=0, created_at=_NOW,
        )
    )  # fmt: skip


async def _visit_type_changed(connection: AsyncConnection) -> None:
    await connection.execute(update(VisitType).values(buffer_after=15))


async def _visit_type_deleted(connection: AsyncConnection) -> None:
    await connection.execute(delete(VisitType))


async def _endpoint_added(connection: AsyncConnection) -> None:
    await connection.execute(
        insert(WebhookEndpoint).values(
            tenant_id=await _tenant(connection), id="wh-new", url="https://example.com/n",
            description="", event_types=["appointment.*"], secret="s", enabled=True,
            created_at=_NOW, updated_at=_NOW,
        )
    )  # fmt: skip


async def _endpoint_subscribed(connection: AsyncConnection) -> None:
    await connection.execute(update(WebhookEndpoint).values(event_types=["*"]))


async def _endpoint_disabled(connection: AsyncConnection) -> None:
    await connection.execute(update(WebhookEndpoint).values(enabled=False))


async def _endpoint_deleted(connection: AsyncConnection) -> None:
    await connection.execute(delete(WebhookEndpoint))


async def _rule_moved_to_another_provider(connection: AsyncConnection) -> None:
    await _other_provider_changed(connection)
    await connection.execute(update(AvailabilityRule).values(provider_id="dr-other"))


@pytest.fixture
async def other_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def known_place_with_endpoint(client: httpx.AsyncClient) -> None:
    """The known place, its tenant having an endpoint that wants no appointment event."""
    endpoint = {"url": "https://example.com/q", "event_types": ["call.completed"]}
    made = await client.post("/webhooks/endpoints", json=endpoint)
    assert made.status_code == 201, made.text
    await _make_known_place(client)


@pytest.mark.parametrize(
    "change",
    [
        _provider_renamed, _provider_made_again, _rule_added, _rule_changed, _rule_deleted,
        _rule_moved_to_another_provider, _visit_type_added, _visit_type_changed,
        _visit_type_deleted, _endpoint_added, _endpoint_subscribed, _endpoint_disabled,
        _endpoint_deleted,
    ],
)  # fmt: skip
@pytest.mark.usefixtures("known_place_with_endpoint")
async def test_a_write_to_the_place_by_another_connection_makes_the_next_reservation_read(
    client: httpx.AsyncClient,
    other_engine: AsyncEngine,
    reads_first: list[str],
    change: Callable[[AsyncConnection], Awaitable[None]],
) -> None:
    async with other_engine.begin() as connection:
        await change(connection)
    await _reserve(client, NEXT)
    assert reads_first == ["dr-jekyll"]


async def _endpoint_failing(connection: AsyncConnection) -> None:
    await connection.execute(update(WebhookEndpoint).values(failing_since=_NOW))


async def _other_provider_changed(connection: AsyncConnection) -> None:
    tenant_id = await _tenant(connection)
    await connection.execute(
        insert(Provider).values(tenant_id=tenant_id, id="dr-other", name="Dr. Other",
                                tz="America/New_York", created_at=_NOW)
    )  # fmt: skip


@pytest.mark.parametrize("change", [_endpoint_failing, _other_provider_changed])
@pytest.mark.usefixtures("known_place_with_endpoint")
async def test_a_write_elsewhere_leaves_the_place_known(
    client: httpx.AsyncClient,
    other_engine: AsyncEngine,
    reads_first: list[str],
    change: Callable[[AsyncConnection], Awaitable[None]],
) -> None:
    async with other_engine.begin() as connection:
        await change(connection)
    await _reserve(client, NEXT)
    assert reads_first == []


async def test_a_provider_made_again_is_read_as_it_is_now(
    client: httpx.AsyncClient, other_engine: AsyncEngine
) -> None:
    """Its number goes on from the deleted one's: never back to the number read before."""
    await _make_known_place(client)
    async with other_engine.begin() as connection:
        await _provider_made_again(connection)  # its rules went with it
    refused = await make_reservation(client, slot_start=NEXT, expect=422)
    assert refused["type"] == "urn:caretime:problem:outside-availability"


@pytest.mark.postgres_only
async def test_a_table_truncated_by_another_connection_is_seen(
    client: httpx.AsyncClient, other_engine: AsyncEngine
) -> None:
    """PostgreSQL runs no row trigger for TRUNCATE; a statement trigger moves the numbers on."""
    await _make_known_place(client)
    async with other_engine.begin() as connection:
        await connection.execute(text("TRUNCATE availability"))
    refused = await make_reservation(client, slot_start=NEXT, expect=422)
    assert refused["type"] == "urn:caretime:problem:outside-availability"


async def _reserve(client: httpx.AsyncClient, slot_start: str) -> None:
    body = {"provider_id": "dr-jekyll", "slot_start": slot_start, "client_id": "patient-1"}
    response = await client.post("/reservations", json=body)
    assert response.status_code < 500, response.text


@pytest.mark.postgres_only
@pytest.mark.usefixtures("known_place_with_endpoint")
async def test_endpoints_truncated_by_another_connection_are_seen(
    client: httpx.AsyncClient, other_engine: AsyncEngine, reads_first: list[str]
) -> None:
    async with other_engine.begin() as connection:
        await connection.execute(text("TRUNCATE webhook_endpoints CASCADE"))
    await _reserve(client, NEXT)
    assert reads_first == ["dr-jekyll"]


@pytest.mark.postgres_only
@pytest.mark.usefixtures("known_place_with_endpoint")
async def test_an_endpoint_disabled_during_a_place_write_deadlocks_neither(
    other_engine: AsyncEngine,
) -> None:
    """The delivery pump disables an endpoint holding its row (FOR UPDATE) while a booking
    write has moved a provider's number (an availability change) and then waits for that
    endpoint's row to deliver its event (FOR KEY SHARE): the endpoint's trigger must not
    wait for the provider's number, or PostgreSQL aborts one of the two (deadlock)."""
    async with other_engine.connect() as booking, other_engine.connect() as pump:
        await booking.execute(update(AvailabilityRule).values(end_minute=900))
        await pump.execute(select(WebhookEndpoint.id).with_for_update())

        async def disable() -> None:
            await pump.execute(update(WebhookEndpoint).values(enabled=False))
            await pump.commit()

        async def deliver() -> None:
            await booking.execute(select(WebhookEndpoint.id).with_for_update(key_share=True))
            await booking.commit()

        async with asyncio.timeout(60):  # a guard against a hang, not a measure of speed
            await asyncio.gather(disable(), deliver())
    async with other_engine.connect() as connection:
        enabled = (await connection.execute(select(WebhookEndpoint.enabled))).scalars().all()
        rules = (await connection.execute(select(AvailabilityRule.end_minute))).scalars().all()
    assert set(enabled) == {False}
    assert set(rules) == {900}
