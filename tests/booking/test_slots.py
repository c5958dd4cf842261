"""GET /slots: computed free slots across providers, in UTC, ordered, paginated."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete, select, update

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy.models import ApiKey, Tenant
from tests.booking.support import make_availability, make_provider, make_reservation, slot_starts

DAY = {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"}


async def test_slots_of_several_providers_are_ordered_and_paginated(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client, id="b-ny")
    await make_provider(client, id="a-paris", tz="Europe/Paris")
    window = {"date": "2026-03-10", "start": "14:00", "end": "15:00"}
    await make_availability(client, provider_id="b-ny", windows={**window, "start": "09:00"})
    await make_availability(client, provider_id="a-paris", windows=window)
    await make_reservation(client, provider_id="a-paris", slot_start="2026-03-10T13:15:00Z")

    first = (await client.get("/slots", params={**DAY, "limit": 3})).json()
    second = (await client.get("/slots", params={**DAY, "cursor": first["next_cursor"]})).json()
    pairs = [(s["start"][11:16], s["provider_id"]) for s in first["slots"] + second["slots"]]
    # Paris 14:00–15:00 CET is 13:00–14:00Z; New York 09:00–15:00 EDT is 13:00–19:00Z.
    assert pairs[:7] == [
        ("13:00", "a-paris"),
        ("13:00", "b-ny"),
        ("13:15", "b-ny"),
        ("13:30", "a-paris"),
        ("13:30", "b-ny"),
        ("13:45", "a-paris"),
        ("13:45", "b-ny"),
    ]
    assert len(pairs) == 3 + 24
    assert second["next_cursor"] is None
    assert first["slots"][0] == {
        "provider_id": "a-paris",
        "start": "2026-03-10T13:00:00Z",
        "end": "2026-03-10T13:15:00Z",
    }
    only_paris = await slot_starts(client, **DAY, provider_id="a-paris")
    assert len(only_paris) == 3


async def test_slot_range_is_at_most_31_days(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    ok = {"start": "2026-03-10T00:00:00Z", "end": "2026-04-10T00:00:00Z"}
    assert (await client.get("/slots", params=ok)).status_code == 200
    too_long = {**ok, "end": "2026-04-10T00:15:00Z"}
    response = await client.get("/slots", params=too_long)
    assert (response.status_code, response.json()["type"]) == (
        400,
        "urn:caretime:problem:range-too-long",
    )
    backwards = await client.get("/slots", params={"start": ok["end"], "end": ok["start"]})
    assert backwards.status_code == 422
    unknown = await client.get("/slots", params={**ok, "provider_id": "nobody"})
    assert unknown.status_code == 404
    bad_cursor = await client.get("/slots", params={**ok, "cursor": "!!"})
    assert bad_cursor.status_code == 422


async def test_dst_day_slots_over_the_api(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client,
        windows=[
            {"date": "2026-03-07", "start": "08:00", "end": "15:00"},
            {"date": "2026-03-08", "start": "08:00", "end": "15:00"},
        ],
    )
    starts = await slot_starts(client, start="2026-03-07T00:00:00Z", end="2026-03-09T00:00:00Z")
    saturday, sunday = starts[:28], starts[28:]
    assert (saturday[0], saturday[-1]) == ("2026-03-07T13:00:00Z", "2026-03-07T19:45:00Z")
    assert (sunday[0], sunday[-1]) == ("2026-03-08T12:00:00Z", "2026-03-08T18:45:00Z")
    assert len(sunday) == 28
    await make_reservation(client, slot_start="2026-03-08T12:00:00Z")
    off = await make_reservation(client, slot_start="2026-03-08T19:00:00Z", expect=422)
    assert off["type"] == "urn:caretime:problem:outside-availability"


@pytest.mark.parametrize(
    ("revoked", "detail"),
    [(True, "this API key has been revoked"), (False, "unknown API key")],
)
async def test_a_key_revoked_or_deleted_elsewhere_cannot_search_even_from_the_key_cache(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, revoked: bool, detail: str
) -> None:
    """The search's own statement re-reads the key (the route has no other statement for
    it), so a key revoked or deleted by another process is refused at once here."""
    await make_provider(client)
    assert (await client.get("/slots", params=DAY)).status_code == 200  # the key is cached
    async with transaction(runtime.sessions) as session:  # as another process would
        if revoked:
            await session.execute(update(ApiKey).values(revoked_at=clock.now()))
        else:
            await session.execute(delete(ApiKey))
    refused = await client.get("/slots", params=DAY)
    assert (refused.status_code, refused.json()["detail"]) == (401, detail)


async def test_a_policy_changed_elsewhere_is_read_for_the_next_search(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The search reads the policy's version beside its rows; a version newer than the
    process has parsed is read (on a connection of its own, once the search's is back) and
    used by that same search."""
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-10", "start": "09:00", "end": "10:00"}
    )
    assert len(await slot_starts(client, **DAY)) == 4
    async with transaction(runtime.sessions) as session:  # as another process would
        tenant = await session.get(Tenant, (await session.scalars(select(Tenant.id))).one())
        assert tenant is not None
        tenant.policy = {**tenant.policy, "booking": {"slot_minutes": 30}}
        tenant.policy_version = Tenant.policy_version + 1
    assert len(await slot_starts(client, **DAY)) == 2
