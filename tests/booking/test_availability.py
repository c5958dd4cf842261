"""Providers and availability over the API: validation, templates, overrides, merging, and
removing time from under appointments."""

from __future__ import annotations

import httpx
import pytest

from tests.booking.support import make_availability, make_provider, make_reservation

WEEK = {"start": "2026-03-09", "end": "2026-03-15"}


async def _windows(client: httpx.AsyncClient, **params: str) -> list[tuple[str, str, str]]:
    response = await client.get("/providers/dr-jekyll/availability", params=params or WEEK)
    assert response.status_code == 200, response.text
    return [(w["date"], w["start"], w["end"]) for w in response.json()["windows"]]


async def test_providers_are_created_listed_and_read(client: httpx.AsyncClient) -> None:
    created = await make_provider(client, id="prov 42.x")
    assert created["id"] == "prov 42.x"
    assert created["tz"] == "America/New_York"
    assert (await client.get("/providers/prov 42.x")).json()["name"] == "Dr. Jekyll"
    listed = (await client.get("/providers")).json()
    assert [p["id"] for p in listed["items"]] == ["prov 42.x"]
    again = await client.post("/providers", json={"id": "prov 42.x", "name": "B", "tz": "UTC"})
    assert again.status_code == 409
    generated = await client.post("/providers", json={"name": "C", "tz": "Europe/Paris"})
    assert generated.json()["id"].startswith("prv_")
    bad_zone = await client.post("/providers", json={"name": "D", "tz": "Mars/Olympus"})
    assert bad_zone.status_code == 422
    assert (await client.get("/providers/nobody")).status_code == 404


async def test_windows_off_the_grid_or_too_short_are_rejected_by_window(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client)
    response = await client.post(
        "/providers/dr-jekyll/availability",
        json=[
            {"date": "2026-03-10", "start": "08:00", "end": "12:00"},
            {"date": "2026-03-10", "start": "13:07", "end": "14:00"},
            {"date": "2026-03-11", "start": "09:00", "end": "09:10"},
            {"date": "2026-03-12", "start": "10:00", "end": "09:00"},
        ],
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:caretime:problem:invalid-availability"
    errors = {(tuple(e["loc"]), e["msg"]) for e in problem["errors"]}
    assert (("body", 1, "start"), "start 13:07 is not on the 15-minute slot grid") in errors
    assert (("body", 2, "end"), "09:00–09:10 is shorter than one 15-minute slot") in errors
    assert (("body", 3, "end"), "end 09:00 is not after start 10:00") in errors
    assert not any(e["loc"][1] == 0 for e in problem["errors"])
    assert "window 1" in problem["detail"]
    assert await _windows(client) == []  # nothing of a rejected submission is kept


async def test_the_grid_follows_the_tenant_slot_length(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    patch = await client.patch("/tenants/me/policy", json={"booking": {"slot_minutes": 30}})
    assert patch.status_code == 200
    response = await client.post(
        "/providers/dr-jekyll/availability",
        json={"date": "2026-03-10", "start": "08:15", "end": "12:00"},
    )
    assert response.json()["errors"][0]["msg"] == "start 08:15 is not on the 30-minute slot grid"


async def test_overlapping_submissions_merge(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-10", "start": "08:00", "end": "12:00"}
    )
    await make_availability(
        client,
        windows=[
            {"date": "2026-03-10", "start": "11:00", "end": "15:00"},
            {"date": "2026-03-10", "start": "15:00", "end": "16:00"},
            {"date": "2026-03-10", "start": "18:00", "end": "19:00"},
        ],
    )
    assert await _windows(client) == [
        ("2026-03-10", "08:00", "16:00"),
        ("2026-03-10", "18:00", "19:00"),
    ]


async def test_weekly_template_with_overrides(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    change = await make_availability(
        client,
        windows={
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "start": "09:00",
            "end": "17:00",
            "from": "2026-03-10",
            "until": "2026-03-13",
        },
    )
    assert change["templates"][0]["from"] == "2026-03-10"
    await make_availability(
        client,
        windows=[
            {"date": "2026-03-11", "action": "remove"},  # a day off
            {"date": "2026-03-12", "start": "13:00", "end": "17:00", "action": "remove"},
            {"date": "2026-03-14", "start": "10:00", "end": "12:00"},  # an extra Saturday
        ],
    )
    assert await _windows(client) == [
        ("2026-03-10", "09:00", "17:00"),
        ("2026-03-12", "09:00", "13:00"),
        ("2026-03-13", "09:00", "17:00"),
        ("2026-03-14", "10:00", "12:00"),
    ]
    # Adding time back on the day off wins over the earlier removal (newest wins).
    await make_availability(
        client, windows={"date": "2026-03-11", "start": "14:00", "end": "15:00"}
    )
    assert ("2026-03-11", "14:00", "15:00") in await _windows(client)


async def test_windows_report_utc_across_the_dst_change(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client,
        windows={
            "weekdays": ["sat", "sun"],
            "start": "08:00",
            "end": "15:00",
            "from": "2026-03-07",
        },
    )
    response = await client.get(
        "/providers/dr-jekyll/availability", params={"start": "2026-03-07", "end": "2026-03-08"}
    )
    windows = response.json()["windows"]
    assert [(w["start_utc"], w["end_utc"]) for w in windows] == [
        ("2026-03-07T13:00:00Z", "2026-03-07T20:00:00Z"),
        ("2026-03-08T12:00:00Z", "2026-03-08T19:00:00Z"),
    ]


async def test_removing_time_under_a_confirmed_appointment_needs_force(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-10", "start": "08:00", "end": "12:00"}
    )
    confirmed = await make_reservation(client, slot_start="2026-03-10T13:00:00Z")
    await client.post(f"/reservations/{confirmed['id']}/confirm")
    held = await make_reservation(client, slot_start="2026-03-10T14:00:00Z", client_id="p2")
    untouched = await make_reservation(client, slot_start="2026-03-10T15:00:00Z", client_id="p3")
    day_off = {"date": "2026-03-10", "start": "08:00", "end": "11:00", "action": "remove"}

    refused = await client.post("/providers/dr-jekyll/availability", json=day_off)
    assert refused.status_code == 409
    assert refused.json()["appointment_ids"] == [confirmed["id"]]
    assert await _windows(client) == [("2026-03-10", "08:00", "12:00")]

    forced = await make_availability(client, windows=day_off, force=True)
    cancelled = {a["id"]: a["status"] for a in forced["cancelled_appointments"]}
    assert cancelled == {confirmed["id"]: "cancelled", held["id"]: "cancelled"}
    still = await client.get(f"/reservations/{untouched['id']}")
    assert still.json()["status"] == "held"


async def test_deleting_a_template_checks_appointments_too(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    change = await make_availability(
        client,
        windows={"weekdays": ["tue"], "start": "08:00", "end": "12:00", "from": "2026-03-10"},
    )
    template_id = change["templates"][0]["id"]
    booked = await make_reservation(client, slot_start="2026-03-17T13:00:00Z")
    await client.post(f"/reservations/{booked['id']}/confirm")
    url = f"/providers/dr-jekyll/availability/templates/{template_id}"
    assert (await client.delete(url)).status_code == 409
    forced = await client.delete(url, params={"force": "true"})
    assert [a["id"] for a in forced.json()["cancelled_appointments"]] == [booked["id"]]
    assert await _windows(client, start="2026-03-10", end="2026-03-20") == []
    assert (await client.delete(url)).status_code == 404


@pytest.mark.parametrize(
    "window",
    [
        {"date": "2026-03-10", "start": "8:00", "end": "12:00"},
        {"date": "2026-03-10", "start": "08:00", "end": "24:15"},
        {"weekdays": [], "start": "08:00", "end": "12:00", "from": "2026-03-10"},
    ],
)
async def test_malformed_windows_are_422(
    client: httpx.AsyncClient, window: dict[str, object]
) -> None:
    await make_provider(client)
    response = await client.post("/providers/dr-jekyll/availability", json=window)
    assert response.status_code == 422


INTERNAL_WORDS = ("WeeklyTemplateIn", "DatedWindowIn", "union[", "list[", "function-", "Value err")


async def test_one_badly_shaped_item_does_not_hide_the_others_errors(
    client: httpx.AsyncClient,
) -> None:
    await make_provider(client)
    body = [
        {"date": "2026-03-10", "start": "08:00", "end": "12:07"},  # off the grid
        "not a window",
        {"weekdays": ["mon", "someday"], "start": "08:00", "end": "12:00", "from": "2026-03-10"},
        {"date": "2026-03-11", "start": "8", "end": "12:00"},
        {"date": "2026-03-12", "start": "09:00", "end": "10:00"},  # fine
    ]
    response = await client.post("/providers/dr-jekyll/availability", json=body)
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["errors"]}
    assert set(errors) == {
        ("body", 0, "end"),
        ("body", 1),
        ("body", 2, "weekdays", 1),
        ("body", 3, "start"),
    }
    assert "slot grid" in errors[("body", 0, "end")]
    assert "expected an object" in errors[("body", 1)]
    assert "HH:MM" in errors[("body", 3, "start")]
    assert not any(word in response.text for word in INTERNAL_WORDS)
    assert await _windows(client) == []  # nothing of a refused submission is applied


@pytest.mark.parametrize(
    "window",
    [
        {"weekdays": "mon", "start": "08:00", "end": "12:00", "from": "2026-03-10"},
        {"weekdays": ["mon"], "start": "08:00", "end": "12:00"},
        {"date": "2026-03-10", "start": "08:00", "end": "12:00", "weekday": "mon"},
        42,
    ],
)
async def test_window_errors_name_fields_not_classes(
    client: httpx.AsyncClient, window: object
) -> None:
    await make_provider(client)
    for body in (window, [window]):
        response = await client.post("/providers/dr-jekyll/availability", json=body)
        assert response.status_code == 422
        for error in response.json()["errors"]:
            assert not any(isinstance(p, str) and p[:1].isupper() for p in error["loc"])
        assert not any(word in response.text for word in INTERNAL_WORDS), response.text
