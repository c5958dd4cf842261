"""GET /slots read in one statement: what it reads before the providers' zones are known must
hold every provider's day (date bounds at both ends of the clock), busy time just outside
the range still counts, errors keep their order, and the body is SlotPage's, byte for byte."""

from __future__ import annotations

from typing import Any

import httpx

from caretime.booking.schemas import SlotPage
from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    make_visit_type,
    slot_starts,
)

KIRITIMATI, PAGO_PAGO = "Pacific/Kiritimati", "Pacific/Pago_Pago"  # UTC+14, UTC-11


async def _slots(client: httpx.AsyncClient, **params: Any) -> list[tuple[str, str]]:
    response = await client.get("/slots", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return [(s["provider_id"], s["start"]) for s in response.json()["items"]]


async def test_date_bounds_reach_the_local_day_of_providers_at_both_ends_of_the_clock(
    client: httpx.AsyncClient,
) -> None:
    for provider_id, tz in (("east", KIRITIMATI), ("west", PAGO_PAGO)):
        await make_provider(client, id=provider_id, tz=tz)
        windows = [
            {"date": "2026-03-10", "start": "00:00", "end": "00:30"},
            {"date": "2026-03-10", "start": "23:00", "end": "23:30"},
            {"date": "2026-03-09", "start": "12:00", "end": "12:15"},
            {"date": "2026-03-11", "start": "12:00", "end": "12:15"},
        ]
        await make_availability(client, provider_id=provider_id, windows=windows)
    # Kiritimati's first minute of the 10th is 10:00Z on the 9th: busy at the very start.
    await make_reservation(client, provider_id="east", slot_start="2026-03-09T10:00:00Z")

    found = await _slots(client, start="2026-03-10", end="2026-03-10")

    assert found == [
        ("east", "2026-03-09T10:15:00Z"),
        ("east", "2026-03-10T09:00:00Z"),
        ("east", "2026-03-10T09:15:00Z"),
        ("west", "2026-03-10T11:00:00Z"),
        ("west", "2026-03-10T11:15:00Z"),
        ("west", "2026-03-11T10:00:00Z"),
        ("west", "2026-03-11T10:15:00Z"),
    ]


async def test_busy_time_just_outside_the_range_still_blocks_slots_inside_it(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client)  # New York: 08:00-12:00 EDT on the 10th is 12:00-16:00Z
    await make_availability(
        client, windows={"date": "2026-03-10", "start": "08:00", "end": "12:00"}
    )
    await make_visit_type(client, id="long", minutes=45, after=15)
    await make_reservation(client, slot_start="2026-03-10T12:00:00Z", visit_type="long")
    await make_reservation(client, slot_start="2026-03-10T14:45:00Z", client_id="patient-2")

    # The long visit (and its buffer) occupies 12:00-13:00Z, begun before the range.
    plain = await slot_starts(client, start="2026-03-10T12:30:00Z", end="2026-03-10T14:00:00Z")
    assert plain == [f"2026-03-10T13:{m:02d}:00Z" for m in (0, 15, 30, 45)]
    # A long visit at 14:00Z would need 14:00-15:00Z free: the 14:45Z visit lies past the end.
    long = await slot_starts(
        client, start="2026-03-10T13:00:00Z", end="2026-03-10T14:15:00Z", visit_type="long"
    )
    assert long == [f"2026-03-10T13:{m:02d}:00Z" for m in (0, 15, 30, 45)]


async def test_the_fall_back_day_by_date_has_its_repeated_hour(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-11-01", "start": "00:00", "end": "03:00"}
    )
    # 00:00 EDT is 04:00Z, 03:00 EST is 08:00Z: four real hours, sixteen slots.
    starts = await slot_starts(client, start="2026-11-01", end="2026-11-01")
    assert (len(starts), starts[0], starts[-1]) == (
        16,
        "2026-11-01T04:00:00Z",
        "2026-11-01T07:45:00Z",
    )


async def test_providers_without_rules_and_ids_named_twice(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_provider(client, id="idle")
    await make_availability(
        client, windows={"date": "2026-03-10", "start": "09:00", "end": "09:30"}
    )
    day = {"start": "2026-03-10", "end": "2026-03-10"}

    assert await _slots(client, **day, provider_id="idle") == []
    named = await _slots(client, **day, provider_id=["dr-jekyll", "idle", "dr-jekyll"])
    assert named == [("dr-jekyll", "2026-03-10T13:00:00Z"), ("dr-jekyll", "2026-03-10T13:15:00Z")]
    assert await _slots(client, **day) == named


async def test_an_unknown_provider_is_named_before_the_range_is_refused(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client, id="east", tz=KIRITIMATI)
    year = {"start": "2026-03-04", "end": "2027-03-04"}
    unknown = await client.get("/slots", params={**year, "provider_id": ["east", "nobody"]})
    assert (unknown.status_code, unknown.json()["missing"]) == (404, ["nobody"])
    too_long = await client.get("/slots", params={**year, "provider_id": "east"})
    assert too_long.json()["type"] == "urn:caretime:problem:range-too-long"
    a_month = {"start": "2026-03-04", "end": "2026-04-03", "provider_id": "east"}
    assert (await client.get("/slots", params=a_month)).status_code == 200
    a_day_more = await client.get("/slots", params={**a_month, "end": "2026-04-04"})
    assert a_day_more.status_code == 400


async def test_the_body_is_what_the_slot_page_model_renders(client: httpx.AsyncClient) -> None:
    odd = 'dr "é" \\ 😀'
    await make_provider(client, id=odd)
    await make_availability(
        client, provider_id=odd, windows={"date": "2026-03-10", "start": "09:00", "end": "10:00"}
    )
    params = {"start": "2026-03-10", "end": "2026-03-10", "provider_id": odd, "limit": 3}

    first = await client.get("/slots", params=params)
    second = await client.get("/slots", params={**params, "cursor": first.json()["next_cursor"]})

    for response, count in ((first, 3), (second, 1)):
        assert response.headers["content-type"] == "application/json"
        body = response.content
        assert body == SlotPage.model_validate_json(body).model_dump_json().encode()
        page = response.json()
        assert page["items"] == page["slots"]
        assert [s["provider_id"] for s in page["items"]] == [odd] * count
    assert second.json()["next_cursor"] is None


async def test_an_instant_with_a_far_offset_reads_the_providers_local_day(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client, id="west", tz=PAGO_PAGO)
    window = {"date": "2026-03-08", "start": "23:30", "end": "23:45"}  # 10:30-10:45Z on the 9th
    await make_availability(client, provider_id="west", windows=window)
    # 00:30 on the 10th at UTC+14 is 23:30 on the 8th in Pago Pago: two dates apart.
    found = await _slots(client, start="2026-03-10T00:30:00+14:00", end="2026-03-10T01:00:00+14:00")
    assert found == [("west", "2026-03-09T10:30:00Z")]


async def test_a_day_limit_counts_visits_far_from_the_searched_range(
    client: httpx.AsyncClient,
) -> None:
    window = {"date": "2026-03-10", "start": "08:00", "end": "20:00"}  # 12:00-24:00Z
    for provider_id in ("capped", "free"):
        await make_provider(client, id=provider_id)
        await make_availability(client, provider_id=provider_id, windows=window)
        await make_reservation(client, provider_id=provider_id, slot_start="2026-03-10T12:00:00Z")
    await client.patch("/providers/capped", json={"max_per_day": 1})
    evening = {"start": "2026-03-10T22:00:00Z", "end": "2026-03-10T23:00:00Z"}

    assert await _slots(client, **evening, provider_id="capped") == []
    found = await _slots(client, **evening)
    assert found == [("free", f"2026-03-10T22:{m:02d}:00Z") for m in (0, 15, 30, 45)]
