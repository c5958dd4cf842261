"""No duplicates: at most one live call per (tenant, number, purpose), by a partial unique
index; rejections name the live call; allow_duplicate overrides; concurrent batches race."""

import asyncio
import re
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.events.models import Event
from caretime.outreach.content import NO_CONTENT
from caretime.outreach.models import LIVE, Call
from caretime.outreach.writing import NewCall, write_calls
from caretime.policy import Scheduled
from caretime.runtime import Runtime
from caretime.tenancy.policy import CallingPolicy
from tests.conftest import LiveServer
from tests.outreach.support import make_items
from tests.support import TEST_API_KEY, bearer
from tests.web.support import sign_in


async def schedule(client: httpx.AsyncClient, items: list[dict]) -> list[dict]:
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    return response.json()


async def test_within_a_batch_a_number_is_called_once_per_purpose(
    client: httpx.AsyncClient,
) -> None:
    ann = {"name": "Ann", "phone": "212-555-0100"}
    results = await schedule(client, [
        {**ann, "purpose": "flu-shot"},
        {**ann, "purpose": "flu-shot", "phone": "+1 212 555 0100"},
        {**ann, "purpose": "annual-wellness"},
        {**ann, "purpose": "flu-shot", "allow_duplicate": True},
    ])  # fmt: skip
    assert [r["status"] for r in results] == ["scheduled", "rejected", "scheduled", "scheduled"]
    assert results[1]["error"].startswith(
        'the same number is already in this batch for "flu-shot" at item 0'
    )
    assert results[0]["purpose"] == "flu-shot"


async def test_a_later_batch_is_told_which_call_is_already_live(
    client: httpx.AsyncClient,
) -> None:
    (first,) = await schedule(client, [{"name": "Ann", "phone": "212-555-0100"}])
    response = await client.post(
        "/outreach/batches", json={"items": make_items(count=3)}
    )  # 212-555-0000..0002: new numbers, plus the live one again below
    assert response.status_code == 201
    again = await client.post(
        "/outreach/batches",
        json={"items": [{"name": "Ann B.", "phone": "(212) 555-0100"}, *make_items(count=1)]},
    )
    batch = again.json()
    assert (batch["scheduled"], batch["rejected"]) == (0, 2)
    assert batch["rejections"] == {"already_scheduled": 2}
    reason = batch["rejected_items"][0]["error"]
    assert reason == (
        f"this number already has a scheduled call {first['scheduled_task_id']} at "
        f'{first["scheduled"]} (send "allow_duplicate": true to add another)'
    )


async def test_allow_duplicate_for_a_whole_batch(client: httpx.AsyncClient) -> None:
    await schedule(client, make_items(count=2))
    response = await client.post(
        "/outreach/batches", json={"items": make_items(count=2), "allow_duplicate": True}
    )
    assert response.json()["scheduled"] == 2
    csv = "name,phone\nAnn,212-555-0000\n"
    refused = await client.post(
        "/outreach/batches", content=csv, headers={"content-type": "text/csv"}
    )
    allowed = await client.post(
        "/outreach/batches?allow_duplicate=true", content=csv,
        headers={"content-type": "text/csv"},
    )  # fmt: skip
    assert (refused.json()["rejected"], allowed.json()["scheduled"]) == (1, 1)


async def test_a_second_post_calls_is_a_409_naming_the_live_call(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "Ann", "phone": "212-555-0100", "purpose": "flu-shot"}
    first = (await client.post("/calls", json=body)).json()
    second = await client.post("/calls", json={**body, "phone": "+12125550100"})
    assert second.status_code == 409
    problem = second.json()
    assert problem["type"].endswith("duplicate-call")
    assert problem["existing_call_id"] == first["id"]
    assert f"already has a scheduled call {first['id']}" in problem["detail"]
    assert (await client.post("/calls", json={**body, "purpose": "other"})).status_code == 201
    allowed = await client.post("/calls", json={**body, "allow_duplicate": True})
    assert (allowed.status_code, allowed.json()["allow_duplicate"]) == (201, True)


async def test_a_cancelled_call_no_longer_blocks_a_new_one(client: httpx.AsyncClient) -> None:
    body = {"name": "Ann", "phone": "212-555-0100"}
    first = (await client.post("/calls", json=body)).json()
    assert (await client.post("/calls", json=body)).status_code == 409
    await client.delete(f"/calls/{first['id']}")
    assert (await client.post("/calls", json=body)).status_code == 201


async def test_the_database_refuses_a_second_live_call_by_itself(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The guarantee is the index, not the application's check: a raw insert of a twin fails."""
    call = (await client.post("/calls", json={"name": "Ann", "phone": "212-555-0100"})).json()
    async with runtime.sessions() as session:
        original = await session.get(Call, call["id"])
        assert original is not None
        twin = _twin(original, "call_twin")
        allowed = _twin(original, "call_twin_allowed", allow_duplicate=True)
    with pytest.raises(IntegrityError):
        await _insert(runtime, twin)
    await _insert(runtime, allowed)


async def test_calls_written_past_screening_skip_only_the_twins_of_live_calls(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    """write_calls without screening (as when a concurrent batch wrote first): the twin of a
    live call is not written, nor its event; the others are, in the same transaction."""
    live = (await client.post("/calls", json={"name": "Ann", "phone": "212-555-0100"})).json()
    tenant = (await client.get("/tenants/me")).json()["id"]
    calling = CallingPolicy()
    at, zone = clock.now() + timedelta(hours=1), "America/New_York"
    planned = [Scheduled(p, zone, (zone,), at, False) for p in ("+12125550100", "+12125550101")]
    calls = [NewCall(f"call_new{i}", "Ann", p, NO_CONTENT) for i, p in enumerate(planned)]
    async with transaction(runtime.sessions) as session:
        written = await write_calls(session, tenant, calling, calls, batch_id=None, now=clock.now())
    assert written == {"call_new1"}
    async with runtime.sessions() as session:
        stored = (await session.scalars(select(Call.id).order_by(Call.id))).all()
        events = (await session.scalars(select(Event.subject_id).where(
            Event.type == "call.scheduled").order_by(Event.subject_id))).all()  # fmt: skip
    assert sorted(stored) == sorted(events) == sorted(["call_new1", live["id"]])


async def _insert(runtime: Runtime, call: Call) -> None:
    async with transaction(runtime.sessions) as session:
        session.add(call)


def _twin(call: Call, call_id: str, **changes: object) -> Call:
    columns = {c.key: getattr(call, c.key) for c in Call.__table__.columns}
    return Call(**{**columns, "id": call_id, **changes})


async def test_the_csv_preview_shows_the_live_call(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    call = (
        await anon_client.post(
            "/calls", json={"name": "Ann", "phone": "212-555-0100"}, headers=bearer(TEST_API_KEY)
        )
    ).json()
    preview = await anon_client.post(
        "/ui/batches/preview",
        data={"csrf_token": token},
        files={"file": ("p.csv", b"name,phone\nAnn,212-555-0100\nBob,212-555-0101\n", "text/csv")},
    )
    assert '<dd data-stat="rejected">1</dd>' in preview.text
    assert f"already has a scheduled call {call['id']}" in preview.text


@pytest.mark.postgres_only
async def test_five_concurrent_identical_batches_create_each_call_once(
    live_server: LiveServer, runtime: Runtime
) -> None:
    items = make_items(count=1000, exchange=555)
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=bearer(TEST_API_KEY), timeout=120
    ) as http:
        await http.patch("/tenants/me/policy", json={"calling": {"max_calls_per_minute": 1000}})
        responses = await asyncio.gather(*(http.post("/schedule", json=items) for _ in range(5)))
    assert {r.status_code for r in responses} == {200}
    statuses = Counter(item["status"] for r in responses for item in r.json())
    assert statuses == {"scheduled": 1000, "rejected": 4000}
    async with runtime.sessions() as session:
        live = await session.execute(
            select(Call.phone_e164, func.count()).where(Call.status.in_(LIVE))
            .group_by(Call.phone_e164)
        )  # fmt: skip
        per_number = dict(live.all())
    assert len(per_number) == 1000
    assert set(per_number.values()) == {1}
    answers = [item for r in responses for item in r.json()]
    winners = {i["scheduled_task_id"] for i in answers if i["status"] == "scheduled"}
    named = {
        re.search(r"call_[0-9a-f]+", i["error"])[0]  # type: ignore[index]
        for i in answers
        if i["status"] == "rejected"
    }
    assert named <= winners
