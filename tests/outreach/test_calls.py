from datetime import UTC, datetime, timedelta

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.runtime import Runtime
from tests.outreach.support import make_items, queued_jobs_for
from tests.support import bearer, make_tenant


async def create(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post("/calls", json={"name": "Ann", "phone": "212-555-0100", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_call_without_a_time_goes_at_the_earliest_allowed_moment(
    client: httpx.AsyncClient,
) -> None:
    call = await create(client, phone="+1 206 555 0100")
    assert (call["status"], call["scheduled"], call["tz"]) == (
        "scheduled",
        "2026-03-02T17:00:00Z",
        "America/Los_Angeles",
    )
    assert call["id"].startswith("call_")


async def test_a_call_at_an_illegal_time_is_refused_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/calls", json={"name": "Ann", "phone": "212-555-0100", "scheduled": "2026-03-03T02:00:00Z"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("outside-calling-window")
    assert "21:00 local time in America/New_York is outside the allowed hours" in problem["detail"]


async def test_per_call_retry_overrides(client: httpx.AsyncClient) -> None:
    call = await create(client, max_attempts=5, retry_delay="1h")
    assert (call["max_attempts"], call["retry_delay"]) == (5, "1h")


async def test_reschedule_moves_the_call_and_its_job(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    call = await create(client)
    response = await client.patch(
        f"/calls/{call['id']}", json={"scheduled": "2026-03-03T15:30:00Z"}
    )
    assert response.status_code == 200
    assert response.json()["scheduled"] == "2026-03-03T15:30:00Z"
    (job,) = await queued_jobs_for(runtime, call["id"])
    assert job.run_at == datetime(2026, 3, 3, 15, 30, tzinfo=UTC)


async def test_reschedule_is_rechecked_against_policy(client: httpx.AsyncClient) -> None:
    call = await create(client)
    response = await client.patch(
        f"/calls/{call['id']}", json={"scheduled": "2026-03-07T23:30:00Z"}
    )
    assert response.status_code == 422
    assert "18:30 local time in America/New_York is outside" in response.json()["detail"]
    assert (await client.get(f"/calls/{call['id']}")).json()["scheduled"] == call["scheduled"]


async def test_cancel_while_pending_then_nothing_can_move_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    call = await create(client, scheduled="2026-03-02T18:00:00Z")
    cancelled = await client.delete(f"/calls/{call['id']}")
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.delete(f"/calls/{call['id']}")).status_code == 200
    assert await queued_jobs_for(runtime, call["id"]) == []
    moved = await client.patch(f"/calls/{call['id']}", json={"scheduled": "2026-03-02T19:00:00Z"})
    assert moved.status_code == 409
    assert (await client.post(f"/calls/{call['id']}/dispatch")).status_code == 409


async def test_dispatch_now_when_allowed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    call = await create(client, scheduled="2026-03-03T15:00:00Z")
    response = await client.post(f"/calls/{call['id']}/dispatch")
    assert response.status_code == 202
    assert response.json()["scheduled"] == "2026-03-02T15:00:00Z"
    (job,) = await queued_jobs_for(runtime, call["id"])
    assert job.run_at == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def test_dispatch_now_outside_the_window_is_refused(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    call = await create(client, scheduled="2026-03-03T15:00:00Z")
    clock.advance(timedelta(hours=8))  # 23:00 UTC = 18:00 in New York
    clock.advance(timedelta(microseconds=123456))  # "now" is never a whole second
    response = await client.post(f"/calls/{call['id']}/dispatch")
    assert response.status_code == 422
    problem = response.json()
    assert "18:00 local time in America/New_York is outside" in problem["detail"]
    # The next allowed moment: 09:00 Tuesday in New York, said in UTC to an API caller.
    assert problem["detail"].endswith("The next allowed moment is Tue 2026-03-03 14:00 UTC")
    assert problem["next_allowed_at"] == "2026-03-03T14:00:00Z"
    assert ".123456" not in problem["detail"]


async def test_list_filters_and_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    batch = (await client.post("/outreach/batches", json={"items": make_items(count=5)})).json()
    await create(client, phone="312-555-0100")
    seen, cursor = [], None
    while True:
        params = {"batch_id": batch["id"], "status": "scheduled", "limit": 2}
        page = (
            await client.get("/calls", params=params | ({"cursor": cursor} if cursor else {}))
        ).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert (await client.get("/calls", params={"status": "cancelled"})).json()["items"] == []


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_another_tenant_cannot_see_or_touch_a_call(
    client: httpx.AsyncClient, runtime: Runtime, method: str
) -> None:
    call = await create(client)
    _, key = await make_tenant(runtime, name="other clinic")
    response = await client.request(
        method,
        f"/calls/{call['id']}",
        headers=bearer(key),
        json={"scheduled": "2026-03-02T18:00:00Z"} if method == "PATCH" else None,
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "problem", "detail"),
    [
        ({"scheduled": "2026-03-01T15:00:00Z"}, "not-schedulable", "is in the past"),
        ({"phone": "800-555-0100"}, "not-schedulable", "toll-free"),
        ({"phone": "555-0100"}, "not-schedulable", "not a valid phone number"),
    ],
)
async def test_a_call_that_cannot_be_scheduled_says_why(
    client: httpx.AsyncClient, body: dict[str, str], problem: str, detail: str
) -> None:
    response = await client.post("/calls", json={"name": "Ann", "phone": "212-555-0100", **body})
    assert response.status_code == 422
    assert response.json()["type"].endswith(problem)
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"retry_delay": 10**12}, "at most 7d"),
        ({"retry_delay": "99999999999d"}, "at most 7d"),
        ({"retry_delay": 1e308}, "at most 7d"),
        ({"retry_delay": -60}, "cannot be negative"),
        ({"retry_delay": "10s"}, "at least 1m"),
    ],
)
async def test_absurd_per_call_overrides_are_refused_naming_the_field(
    client: httpx.AsyncClient, override: dict[str, object], words: str
) -> None:
    response = await client.post(
        "/calls", json={"name": "Ann", "phone": "212-555-0100", **override}
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == ["body", "retry_delay"]
    assert words in error["msg"]


async def test_a_retry_delay_in_iso_8601(client: httpx.AsyncClient) -> None:
    call = await create(client, retry_delay="PT45M")
    assert call["retry_delay"] == "45m"
