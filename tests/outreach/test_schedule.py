import json
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from caretime.outreach.models import Call, OutreachBatch
from caretime.outreach.service import MAX_BATCH_ITEMS
from caretime.runtime import Runtime
from tests.outreach.support import make_items, sample_payload, set_calling_policy
from tests.support import TEST_API_KEY


async def test_the_sample_payload_gets_one_call_and_one_rejection(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/schedule", json=sample_payload())
    assert response.status_code == 200
    first, second = response.json()
    assert first["scheduled_task_id"].startswith("call_")
    assert first == {
        "name": "John Doe",
        "phone": "1-206-555-5555",
        "phone_e164": "+12065555555",
        "tz": "America/Los_Angeles",
        "scheduled": "2026-03-02T17:00:00Z",
        "scheduled_task_id": first["scheduled_task_id"],
        "status": "scheduled",
    }
    assert second == {
        "name": "Jane Doe",
        "phone": "2-(208)-555-5556",
        "status": "rejected",
        "error": "not a valid phone number",
    }
    call = (await client.get(f"/calls/{first['scheduled_task_id']}")).json()
    assert (call["status"], call["scheduled"]) == ("scheduled", "2026-03-02T17:00:00Z")


@pytest.mark.parametrize("body", [{"name": "A", "phone": "212-555-0100"}, "text", 42, None])
async def test_a_body_that_is_not_an_array_is_a_422(
    client: httpx.AsyncClient, body: object
) -> None:
    response = await client.post("/schedule", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_one_bad_item_never_fails_the_batch(client: httpx.AsyncClient) -> None:
    items = [
        {"phone": "212-555-0100"},
        5,
        {"name": "B", "phone": "212-555-0101", "scheduled": "next tuesday"},
        {"name": "C", "phone": "212-555-0102", "tz": "Mars/Base"},
        {"name": "D", "phone": "+1 800 555 0100"},
        {"name": "E", "phone": "212-555-0103", "scheduled": "2026-03-03T03:00:00-05:00"},
        {"name": "F", "phone": "212-555-0104"},
    ]
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200
    results = response.json()
    assert [r["status"] for r in results] == ["rejected"] * 6 + ["scheduled"]
    errors = [r["error"] for r in results[:6]]
    assert errors[0] == 'missing "name"'
    assert errors[1] == 'an item must be an object with "name" and "phone"'
    assert errors[2].startswith('"scheduled" is not an ISO 8601 time')
    assert errors[3] == "unknown time zone 'Mars/Base': give an IANA name"
    assert "toll-free" in errors[4]
    assert "03:00 local time in America/New_York is outside the allowed hours" in errors[5]


async def test_dry_run_plans_without_creating_calls(client: httpx.AsyncClient) -> None:
    response = await client.post("/schedule?dry_run=true", json=make_items(count=3))
    assert [r["status"] for r in response.json()] == ["scheduled"] * 3
    assert {r["scheduled_task_id"] for r in response.json()} == {None}
    assert (await client.get("/calls")).json()["items"] == []


async def test_the_same_batch_twice_creates_calls_once(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "campaign-42"}
    first = await client.post("/schedule", json=make_items(count=5), headers=headers)
    again = await client.post("/schedule", json=make_items(count=5), headers=headers)
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len((await client.get("/calls")).json()["items"]) == 5


async def test_an_idempotency_key_reused_for_another_batch_is_a_422(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "campaign-43"}
    await client.post("/schedule", json=make_items(count=2), headers=headers)
    response = await client.post("/schedule", json=make_items(count=3), headers=headers)
    assert response.status_code == 422
    assert response.json()["type"].endswith("idempotency-key-reused")


async def test_capacity_counts_calls_already_scheduled_by_earlier_batches(
    client: httpx.AsyncClient,
) -> None:
    await set_calling_policy(client, max_calls_per_minute=2)
    first = (await client.post("/schedule", json=make_items(count=3))).json()
    second = (await client.post("/schedule", json=make_items(count=3, exchange=556))).json()
    minutes = Counter(r["scheduled"][:16] for r in first + second)
    assert minutes == {"2026-03-02T15:00": 2, "2026-03-02T15:01": 2, "2026-03-02T15:02": 2}


async def test_schedule_needs_an_api_key(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.post("/schedule", json=[])).status_code == 401


async def test_a_batch_over_the_item_cap_is_refused_whole(client: httpx.AsyncClient) -> None:
    items = [{"name": "P", "phone": "2125550100"}] * (MAX_BATCH_ITEMS + 1)
    response = await client.post("/schedule", json=items)
    assert response.status_code == 422
    problem = response.json()
    assert problem["limit"] == MAX_BATCH_ITEMS
    assert f"at most {MAX_BATCH_ITEMS} items" in problem["detail"]
    assert (await client.get("/calls")).json()["items"] == []


async def test_a_batch_whose_client_left_is_abandoned(app: FastAPI, runtime: Runtime) -> None:
    """The client disconnects as soon as its body is sent: the batch is cancelled and its
    transaction rolled back, not run to the end for nobody."""
    body = json.dumps(make_items(count=2_000)).encode()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"authorization", f"Bearer {TEST_API_KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/schedule", "raw_path": b"/schedule",
             "query_string": b"", "headers": headers, "server": ("caretime.test", 80),
             "client": ("127.0.0.1", 5000), "root_path": "", "state": {}}  # fmt: skip
    await app(scope, receive, send)
    assert sent[0]["status"] == 499
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 0
        assert await session.scalar(select(func.count()).select_from(OutreachBatch)) == 0
