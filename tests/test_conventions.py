"""The conventions every endpoint shares (issue 17): one list shape, one status for a reused
Idempotency-Key, strict status filters, phones given as JSON numbers, local-day date ranges."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.booking.support import make_availability, make_provider
from tests.outreach.support import make_items

LISTS = [
    "/calls",
    "/providers",
    "/slots",
    "/appointments",
    "/caregivers",
    "/shifts",
    "/tenants/me/keys",
    "/simulator/messages",
]


@pytest.mark.parametrize("path", LISTS)
async def test_every_list_answers_items_and_next_cursor(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    page = response.json()
    assert isinstance(page, dict)
    assert isinstance(page["items"], list)
    assert "next_cursor" in page


async def test_slots_keep_their_old_name_as_an_alias(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-10", "start": "09:00", "end": "10:00"}
    )
    page = (await client.get("/slots", params={"start": "2026-03-10"})).json()
    assert len(page["items"]) == 4
    assert page["slots"] == page["items"]


@pytest.mark.parametrize("path", ["/calls", "/appointments", "/shifts", "/caregivers?active=maybe"])
async def test_an_unknown_status_filter_is_a_422_not_an_empty_page(
    client: httpx.AsyncClient, path: str
) -> None:
    params = None if "?" in path else {"status": "bogus"}
    response = await client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][0] == "query"


async def _reserve(client: httpx.AsyncClient, body: dict[str, Any], key: str) -> httpx.Response:
    return await client.post("/reservations", json=body, headers={"Idempotency-Key": key})


@pytest.mark.parametrize("endpoint", ["/schedule", "/outreach/batches", "/reservations"])
async def test_reusing_an_idempotency_key_with_another_body_is_422_everywhere(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    bodies: list[Any]
    if endpoint == "/schedule":
        bodies = [make_items(count=1), make_items(count=2)]
    elif endpoint == "/outreach/batches":
        bodies = [{"items": make_items(count=1)}, {"items": make_items(count=2)}]
    else:
        await make_provider(client)
        await make_availability(
            client, windows={"date": "2026-03-10", "start": "09:00", "end": "10:00"}
        )
        slot = {"provider_id": "dr-jekyll", "slot_start": "2026-03-10T13:00:00Z"}
        bodies = [{**slot, "client_id": "p1"}, {**slot, "client_id": "p2"}]
    headers = {"Idempotency-Key": "same-key"}
    first = await client.post(endpoint, json=bodies[0], headers=headers)
    assert first.status_code in (200, 201), first.text
    again = await client.post(endpoint, json=bodies[1], headers=headers)
    assert again.status_code == 422, again.text
    assert again.json()["type"] == "urn:caretime:problem:idempotency-key-reused"


PHONE_NUMBER = 2125550100  # a JSON number, as a spreadsheet export writes it


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/calls", {"name": "Ann"}),
        ("/caregivers", {"name": "Ann", "roles": ["RN"]}),
        ("/messages/inbound", {"body": "hello"}),
    ],
)
async def test_a_phone_given_as_a_json_integer_is_read_as_its_digits(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    field = "from" if path == "/messages/inbound" else "phone"
    response = await client.post(path, json={**body, field: PHONE_NUMBER})
    assert response.status_code in (200, 201), response.text
    if path != "/messages/inbound":
        assert response.json().get("phone_e164", response.json().get("phone")) == "+12125550100"


@pytest.mark.parametrize("phone", [2.1255501e9, 2125550100.5, True])
@pytest.mark.parametrize("path", ["/calls", "/caregivers"])
async def test_a_phone_number_that_cannot_be_digits_is_refused_saying_why(
    client: httpx.AsyncClient, path: str, phone: object
) -> None:
    body = {"name": "Ann", "phone": phone, "roles": ["RN"]} if path == "/caregivers" else {
        "name": "Ann", "phone": phone}  # fmt: skip
    response = await client.post(path, json=body)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["loc"] == ["body", "phone"]
    assert "a phone number is text" in error["msg"]


async def test_schedule_items_read_integer_phones_and_refuse_others(
    client: httpx.AsyncClient,
) -> None:
    items = [{"name": "Ann", "phone": PHONE_NUMBER}, {"name": "Bob", "phone": 2.1e9}]
    answer = (await client.post("/schedule", json=items)).json()
    assert (answer[0]["status"], answer[0]["phone_e164"]) == ("scheduled", "+12125550100")
    assert answer[1]["status"] == "rejected"
    assert "a phone number is text" in answer[1]["error"]


async def test_date_only_ranges_are_each_providers_local_days(client: httpx.AsyncClient) -> None:
    await make_provider(client, id="tokyo", tz="Asia/Tokyo")
    await make_provider(client, id="la", tz="America/Los_Angeles")
    await make_availability(
        client, provider_id="tokyo",
        windows=[{"date": "2026-03-10", "start": "09:00", "end": "09:30"},  # 00:00Z on the 10th
                 {"date": "2026-03-11", "start": "00:30", "end": "01:00"}],  # 15:30Z on the 10th
    )  # fmt: skip
    await make_availability(  # 20:00 PDT on the 10th is 03:00Z on the 11th
        client, provider_id="la", windows={"date": "2026-03-10", "start": "20:00", "end": "20:30"}
    )
    page = await client.get("/slots", params={"start": "2026-03-10", "end": "2026-03-10"})
    assert page.status_code == 200, page.text
    assert [(s["provider_id"], s["start"]) for s in page.json()["items"]] == [
        ("tokyo", "2026-03-10T00:00:00Z"),
        ("tokyo", "2026-03-10T00:15:00Z"),
        ("la", "2026-03-11T03:00:00Z"),
        ("la", "2026-03-11T03:15:00Z"),
    ]
    held = await client.post(
        "/reservations",
        json={"provider_id": "la", "slot_start": "2026-03-11T03:00:00Z", "client_id": "p1"},
    )
    assert held.status_code == 201, held.text
    day = {"provider_id": "la", "start": "2026-03-10", "end": "2026-03-10"}
    listed = (await client.get("/appointments", params=day)).json()["items"]
    assert [a["id"] for a in listed] == [held.json()["id"]]
    next_day = {**day, "start": "2026-03-11", "end": "2026-03-11"}
    assert (await client.get("/appointments", params=next_day)).json()["items"] == []
