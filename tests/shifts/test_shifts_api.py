"""Shifts over HTTP: create, read, list, cancel; expiry at the start time."""

from __future__ import annotations

from datetime import timedelta

import httpx

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher

SHIFT = {
    "id": "b2c3d4e5-f6g7-8901-bcde-f23456789012",
    "role_required": "rn",
    "start_time": "2026-03-02T20:00:00Z",
    "end_time": "2026-03-03T04:00:00Z",
    "location": "Ballard office",
    "notes": "bring badge",
}


async def test_create_and_get(client: httpx.AsyncClient) -> None:
    response = await client.post("/shifts", json=SHIFT)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] == SHIFT["id"]
    assert created["status"] == "open"
    assert created["role_required"] == "RN"
    assert created["start_time"] == "2026-03-02T20:00:00Z"
    assert created["tz"] == "America/New_York"
    assert created["assigned_caregiver_id"] is None
    fetched = (await client.get(f"/shifts/{SHIFT['id']}")).json()
    assert fetched["status"] == "open"
    assert fetched["fanout"] is None


async def test_shift_must_end_after_it_starts_and_have_zoned_times(
    client: httpx.AsyncClient,
) -> None:
    backwards = {**SHIFT, "end_time": "2026-03-02T19:00:00Z"}
    assert (await client.post("/shifts", json=backwards)).status_code == 422
    naive = {**SHIFT, "start_time": "2026-03-02T20:00:00"}
    assert (await client.post("/shifts", json=naive)).status_code == 422


async def test_duplicate_and_unknown(client: httpx.AsyncClient) -> None:
    await client.post("/shifts", json=SHIFT)
    assert (await client.post("/shifts", json=SHIFT)).status_code == 409
    assert (await client.get("/shifts/missing")).status_code == 404


async def test_list_by_status(client: httpx.AsyncClient) -> None:
    await client.post("/shifts", json=SHIFT)
    await client.post("/shifts", json={**SHIFT, "id": "s2"})
    await client.post("/shifts/s2/cancel")
    listed = (await client.get("/shifts", params={"status": "open"})).json()
    assert [s["id"] for s in listed["items"]] == [SHIFT["id"]]


async def test_cancel_is_idempotent_and_final(client: httpx.AsyncClient) -> None:
    await client.post("/shifts", json=SHIFT)
    first = await client.post(f"/shifts/{SHIFT['id']}/cancel")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert (await client.post(f"/shifts/{SHIFT['id']}/cancel")).json()["status"] == "cancelled"
    assert (await client.post("/shifts/missing/cancel")).status_code == 404


async def test_open_shift_expires_exactly_at_its_start(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    await client.post("/shifts", json=SHIFT)
    clock.advance(timedelta(hours=5) - timedelta(seconds=1))
    await dispatcher.run_pending()
    assert (await client.get(f"/shifts/{SHIFT['id']}")).json()["status"] == "open"
    clock.advance(timedelta(seconds=1))
    await dispatcher.run_pending()
    assert (await client.get(f"/shifts/{SHIFT['id']}")).json()["status"] == "expired"
    response = await client.post(f"/shifts/{SHIFT['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["shift_status"] == "expired"


async def test_shift_reported_after_its_start_is_expired(client: httpx.AsyncClient) -> None:
    late = {**SHIFT, "start_time": "2026-03-02T14:00:00Z"}
    assert (await client.post("/shifts", json=late)).json()["status"] == "expired"


async def test_unstorable_text_and_instants_are_validation_errors(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/shifts", json={**SHIFT, "location": "a\x00b"})).status_code == 422
    ancient = {**SHIFT, "start_time": "0001-01-01T00:00:00+01:00"}
    assert (await client.post("/shifts", json=ancient)).status_code == 422
    assert (await client.get("/shifts/a%00b")).status_code == 422
    assert (await client.get("/caregivers", params={"role": "R\x00N"})).status_code == 422
