"""Hostile inputs are 4xx problems naming what and where, never 500s (issue 20.5): NUL
characters anywhere (PostgreSQL text cannot hold them), years 0001 and 9999 in every kind of
time, a 5,000-character zone, a lone surrogate, an over-long name. Both databases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from caretime.inputs import text_problem
from tests.booking.support import make_availability, make_provider

PHONE = "+12065550100"
LONG = "A" * 5000
SHIFT = {"id": "s1", "role_required": "RN", "start_time": "2026-03-02T20:00:00Z",
         "end_time": "2026-03-03T04:00:00Z"}  # fmt: skip

# (method, path, JSON body or None, query parameters or None, where the problem is)
CASES: list[tuple[str, str, Any, dict[str, str] | None, str]] = [
    ("POST", "/calls", {"name": "Ann\x00", "phone": PHONE}, None, "body.name"),
    ("POST", "/calls", {"name": "Ann", "phone": PHONE + "\x00"}, None, "body.phone"),
    ("POST", "/schedule", [{"name": "Ann", "phone": PHONE, "tz": "\x00"}], None, "body.0.tz"),
    ("POST", "/caregivers", {"name": "C\x00", "phone": PHONE, "roles": ["RN"]}, None,
     "body.name"),
    ("POST", "/shifts", {**SHIFT, "notes": "gate\x00"}, None, "body.notes"),
    ("POST", "/providers", {"id": "dr\x00", "name": "Dr", "tz": "UTC"}, None, "body.id"),
    ("POST", "/messages/inbound", {"from": PHONE, "body": "YES\x00"}, None, "body.body"),
    ("PUT", "/tenants/me/numbers", {"numbers": ["+1500555\x000"]}, None, "body.numbers.0"),
    ("PATCH", "/tenants/me/policy", {"calling": {"default_tz": "\x00"}}, None,
     "body.calling.default_tz"),
    ("GET", "/calls/call_1%00", None, None, "path"),
    ("GET", "/shifts/s%00", None, None, "path"),
    ("POST", "/reservations/r%00/confirm", None, None, "path"),
    ("GET", "/calls", None, {"status": "pending\x00"}, "query.status"),
    ("GET", "/slots", None, {"provider_id": "dr\x00"}, "query.provider_id"),
    ("POST", "/calls", {"name": "Ann", "phone": PHONE, "scheduled": "9999-12-31T23:00:00Z"},
     None, "body.scheduled"),
    ("POST", "/calls", {"name": "Ann", "phone": PHONE, "scheduled": "0001-01-01T00:00:00"},
     None, "body.scheduled"),
    ("POST", "/schedule", [{"name": "Ann", "phone": PHONE, "scheduled": "9999-12-31"}], None,
     "body.0.scheduled"),
    ("GET", "/slots", None, {"provider_id": "dr-jekyll", "start": "0001-01-01",
                             "end": "2026-03-04"}, "query.start"),
    ("GET", "/slots", None, {"provider_id": "dr-jekyll", "start": "2026-03-03",
                             "end": "9999-12-31T23:59:59Z"}, "query.end"),
    ("POST", "/reservations", {"provider_id": "dr-jekyll", "slot_start": "9999-12-31T23:45:00Z",
                               "client_id": "p1"}, None, "body.slot_start"),
    ("POST", "/reservations", {"provider_id": "dr-jekyll", "slot_start": "0001-01-01T00:00:00Z",
                               "client_id": "p1"}, None, "body.slot_start"),
    ("POST", "/providers/dr-jekyll/availability", {"date": "9999-12-31", "start": "08:00",
                                                   "end": "15:00"}, None, "body.date"),
    ("POST", "/providers/dr-jekyll/availability", {"date": "0001-01-01", "start": "08:00",
                                                   "end": "15:00"}, None, "body.date"),
    ("POST", "/shifts", {**SHIFT, "start_time": "9999-12-31T20:00:00Z",
                         "end_time": "9999-12-31T23:00:00Z"}, None, "body.start_time"),
    ("POST", "/calls", {"name": "Ann", "phone": PHONE, "tz": LONG}, None, "body.tz"),
    ("POST", "/providers", {"id": "dr-x", "name": "Dr", "tz": LONG}, None, "body.tz"),
    ("POST", "/shifts", {**SHIFT, "tz": LONG}, None, "body.tz"),
    ("PATCH", "/tenants/me/policy", {"calling": {"default_tz": LONG}}, None,
     "body.calling.default_tz"),
]  # fmt: skip


@pytest.fixture
async def provider(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )


def _mentions(problem: dict[str, Any], where: str) -> bool:
    locs = {".".join(str(part) for part in error["loc"]) for error in problem.get("errors") or []}
    field = where.rsplit(".", 1)[-1]
    return where in locs or any(loc.endswith(field) for loc in locs)


@pytest.mark.usefixtures("provider")
@pytest.mark.parametrize(("method", "path", "body", "params", "where"), CASES)
async def test_hostile_input_is_a_4xx_problem_naming_where(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str] | None,
    where: str,
) -> None:
    response = await client.request(method, path, json=body, params=params)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert _mentions(problem, where), problem
    assert LONG not in response.text  # the error names the field, it does not echo the input


async def test_a_lone_surrogate_in_schedule_is_a_422_naming_the_item(
    client: httpx.AsyncClient,
) -> None:
    raw = b'[{"name": "Ann", "phone": "+12065550100"}, {"name": "\\udc00x", "phone": "+1206"}]'
    response = await client.post(
        "/schedule", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", 1, "name"]
    assert (await client.get("/calls")).json()["items"] == []


async def test_a_schedule_item_is_checked_by_the_calls_model(client: httpx.AsyncClient) -> None:
    """One over-long item is that item's rejection (one bad item never fails the batch), in
    the words POST /calls would use; the other items are scheduled."""
    items = [
        {"name": "N" * 10_000, "phone": "212-555-0100"},
        {"name": "Ann", "phone": "212-555-0101", "tz": LONG},
        {"name": "Bob", "phone": "212-555-0102"},
    ]
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200
    results = response.json()
    assert [r["status"] for r in results] == ["rejected", "rejected", "scheduled"]
    assert results[0]["error"] == '"name" is longer than 200 characters'
    assert results[1]["error"] == '"tz" is longer than 64 characters'
    one = await client.post("/calls", json=items[0])
    assert one.status_code == 422
    assert one.json()["errors"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-03-03", None),
        ("2026-03-03T09:00:00-05:00", None),
        ("9999-12-31T23:59:59Z", "year 9999"),
        ("0001-01-01", "year 1 "),
        ("1899-12-31 23:00", "year 1899"),
        ("meet 3000-01-01 at noon", None),  # free text that holds a date is text
        ("José \U0001f600", None),
        ("a\x00b", "NUL"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_text_problems(text: str, problem: str | None) -> None:
    found = text_problem(text)
    assert (found is None) == (problem is None)
    assert problem is None or problem in (found or "")
