"""Visit types over the API: longer visits block every start they overlap, buffers keep time
free around a visit and inside availability, and a provider's day can be capped."""

from __future__ import annotations

import httpx
import pytest

from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    make_visit_type,
    slot_starts,
)

# The clock starts at 2026-03-02T15:00Z. 4 March 09:00–12:00 New York (EST) is 14:00–17:00Z.
DAY = {"start": "2026-03-04T00:00:00Z", "end": "2026-03-05T00:00:00Z"}


def at(hhmm: str, day: str = "2026-03-04") -> str:
    """A New York wall time on 4 March (EST, UTC-5) as UTC."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return f"{day}T{hours + 5:02d}:{minutes:02d}:00Z"


@pytest.fixture
async def morning(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client,
        windows=[
            {"date": "2026-03-04", "start": "09:00", "end": "12:00"},
            {"date": "2026-03-05", "start": "09:00", "end": "12:00"},
        ],
    )


def quarter_hours(first: str, last: str) -> list[str]:
    start = [int(p) for p in first.split(":")]
    end = [int(p) for p in last.split(":")]
    minutes = range(start[0] * 60 + start[1], end[0] * 60 + end[1] + 1, 15)
    return [at(f"{m // 60:02d}:{m % 60:02d}") for m in minutes]


@pytest.mark.usefixtures("morning")
async def test_a_45_minute_visit_fits_only_where_it_ends_inside_availability(
    client: httpx.AsyncClient,
) -> None:
    await make_visit_type(client, id="consult", minutes=45)
    starts = await slot_starts(client, **DAY, visit_type="consult")
    assert starts == quarter_hours("09:00", "11:15")
    response = await client.get("/slots", params={**DAY, "visit_type": "consult"})
    first = response.json()["slots"][0]
    assert (first["start"], first["end"]) == (at("09:00"), at("09:45"))
    late = await make_reservation(client, slot_start=at("11:30"), visit_type="consult", expect=422)
    assert late["type"] == "urn:caretime:problem:outside-availability"
    assert "45-minute visit" in late["detail"]


@pytest.mark.usefixtures("morning")
async def test_a_45_minute_visit_blocks_the_three_slots_it_covers_and_longer_visits_around(
    client: httpx.AsyncClient,
) -> None:
    await make_visit_type(client, id="consult", minutes=45)
    hold = await make_reservation(client, slot_start=at("10:00"), visit_type="consult")
    assert (hold["slot_end"], hold["visit_type"]) == (at("10:45"), "consult")
    quarter = await slot_starts(client, **DAY)
    assert [s for s in quarter_hours("09:00", "11:45") if s not in quarter] == quarter_hours(
        "10:00", "10:30"
    )
    long = await slot_starts(client, **DAY, visit_type="consult")
    # A 45-minute visit may end at 10:00 or start at 10:45, nothing in between.
    assert long == [*quarter_hours("09:00", "09:15"), *quarter_hours("10:45", "11:15")]
    for start in quarter_hours("09:30", "10:30"):
        taken = await make_reservation(
            client, slot_start=start, visit_type="consult", client_id="p2", expect=409
        )
        assert taken["type"] == "urn:caretime:problem:slot-taken"
    await make_reservation(client, slot_start=at("10:45"), client_id="p3")


@pytest.mark.usefixtures("morning")
async def test_buffers_stay_inside_availability_and_clear_of_other_visits(
    client: httpx.AsyncClient,
) -> None:
    await make_visit_type(client, id="procedure", minutes=30, before=15, after=15)
    assert await slot_starts(client, **DAY, visit_type="procedure") == quarter_hours(
        "09:15", "11:15"
    )
    await make_reservation(client, slot_start=at("10:00"), visit_type="procedure")
    # It occupies 09:45–10:45: a 15-minute visit may end at 09:45 or start at 10:45.
    quarter = await slot_starts(client, **DAY)
    assert at("09:30") in quarter
    assert at("10:45") in quarter
    assert not set(quarter_hours("09:45", "10:30")) & set(quarter)
    # Another buffered visit needs its own buffers clear of 09:45–10:45 as well.
    assert await slot_starts(client, **DAY, visit_type="procedure") == [at("11:00"), at("11:15")]
    taken = await make_reservation(
        client, slot_start=at("09:15"), visit_type="procedure", client_id="p2", expect=409
    )
    assert taken["type"] == "urn:caretime:problem:slot-taken"
    await make_reservation(client, slot_start=at("11:00"), visit_type="procedure", client_id="p3")


@pytest.mark.usefixtures("morning")
async def test_a_cancelled_long_visit_frees_all_its_time(client: httpx.AsyncClient) -> None:
    await make_visit_type(client, id="long", minutes=60)
    hold = await make_reservation(client, slot_start=at("10:00"), visit_type="long")
    await client.post(f"/reservations/{hold['id']}/cancel")
    assert await slot_starts(client, **DAY) == quarter_hours("09:00", "11:45")


@pytest.mark.usefixtures("morning")
async def test_visit_types_are_listed_checked_and_removed(client: httpx.AsyncClient) -> None:
    created = await make_visit_type(client, id="consult", minutes=45, after=5)
    assert created == {
        "id": "consult",
        "provider_id": "dr-jekyll",
        "name": "consult",
        "minutes": 45,
        "buffer_before": 0,
        "buffer_after": 5,
    }
    again = await client.post(
        "/providers/dr-jekyll/visit-types", json={"id": "consult", "name": "x", "minutes": 15}
    )
    assert (again.status_code, again.json()["type"]) == (
        409,
        "urn:caretime:problem:visit-type-exists",
    )
    odd = await client.post(
        "/providers/dr-jekyll/visit-types",
        json={"id": "odd", "name": "x", "minutes": 20, "buffer_after": 90},
    )
    assert odd.status_code == 422
    assert {tuple(e["loc"]) for e in odd.json()["errors"]} == {
        ("body", "minutes"),
        ("body", "buffer_after"),
    }
    listed = await client.get("/providers/dr-jekyll/visit-types")
    assert listed.json() == [created]
    removed = await client.delete("/providers/dr-jekyll/visit-types/consult")
    assert removed.status_code == 204
    gone = await client.get("/slots", params={**DAY, "visit_type": "consult"})
    assert (gone.status_code, gone.json()["type"]) == (
        404,
        "urn:caretime:problem:visit-type-not-found",
    )
    unknown = await make_reservation(
        client, slot_start=at("10:00"), visit_type="consult", expect=404
    )
    assert unknown["type"] == "urn:caretime:problem:visit-type-not-found"


async def test_slots_by_visit_type_come_from_providers_offering_it(
    client: httpx.AsyncClient,
) -> None:
    for provider_id in ("dr-a", "dr-b"):
        await make_provider(client, id=provider_id)
        await make_availability(
            client,
            provider_id=provider_id,
            windows={"date": "2026-03-04", "start": "09:00", "end": "10:00"},
        )
    await make_visit_type(client, id="consult", minutes=60, provider_id="dr-b")
    response = await client.get("/slots", params={**DAY, "visit_type": "consult"})
    assert [(s["provider_id"], s["start"]) for s in response.json()["slots"]] == [
        ("dr-b", at("09:00"))
    ]
    named = await client.get(
        "/slots", params={**DAY, "visit_type": "consult", "provider_id": ["dr-a", "dr-b"]}
    )
    assert named.status_code == 404
    assert named.json()["missing"] == ["dr-a"]


@pytest.mark.usefixtures("morning")
async def test_max_per_day_caps_a_providers_day(client: httpx.AsyncClient) -> None:
    patched = await client.patch("/providers/dr-jekyll", json={"max_per_day": 2})
    assert patched.json()["max_per_day"] == 2
    first = await make_reservation(client, slot_start=at("09:00"), client_id="p1")
    await make_reservation(client, slot_start=at("10:00"), client_id="p2")
    full = await make_reservation(client, slot_start=at("11:00"), client_id="p3", expect=409)
    assert full["type"] == "urn:caretime:problem:day-full"
    assert full["date"] == "2026-03-04"
    assert await slot_starts(client, **DAY) == []
    next_day = {"start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z"}
    assert len(await slot_starts(client, **next_day)) == 12
    await client.post(f"/reservations/{first['id']}/cancel")
    await make_reservation(client, slot_start=at("11:00"), client_id="p3")
    lifted = await client.patch("/providers/dr-jekyll", json={"max_per_day": None})
    assert lifted.json()["max_per_day"] is None
    await make_reservation(client, slot_start=at("11:15"), client_id="p4")


async def test_max_per_day_is_checked_when_a_provider_is_created(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/providers", json={"id": "dr-x", "name": "X", "tz": "UTC", "max_per_day": 0}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "max_per_day"]
