"""A batch planned and written in chunks (outreach.pipeline): the same answers as the batch
planned whole, all or nothing, and one live call per number when chunked batches race."""

import asyncio
import contextlib
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from caretime.dispatch.models import Job
from caretime.events.models import Event
from caretime.outreach import pipeline
from caretime.outreach.models import LIVE, Call, Contact, OutreachBatch
from caretime.runtime import Runtime
from tests.conftest import Database, LiveServer
from tests.outreach.support import make_items, set_calling_policy
from tests.support import TEST_API_KEY, bearer


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few items, so that a batch of twenty spans several, planned in threads."""
    monkeypatch.setattr(pipeline, "FIRST_CHUNK", 3)
    monkeypatch.setattr(pipeline, "CHUNK", 4)
    monkeypatch.setattr(pipeline, "INLINE_ITEMS", 5)


def _items() -> list[dict[str, Any]]:
    """Twenty items across six chunks: a number repeated in a later chunk, a bad number, an
    item without a name, another purpose for a number already in the batch."""
    items: list[dict[str, Any]] = make_items(count=20)
    items[9] = {**items[1], "name": "Twin of item 1"}
    items[5] = {"name": "Nobody", "phone": "12"}
    items[13] = {"phone": "212-555-0999"}
    items[17] = {**items[2], "purpose": "flu-shot"}
    return items


def _without_ids(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "scheduled_task_id"} for a in answers]


@pytest.mark.parametrize(
    "variant", ["earliest", "a pinned item (planned whole)", "spread (planned whole)"]
)
async def test_a_batch_in_chunks_answers_as_its_plan_of_the_whole(
    client: httpx.AsyncClient, runtime: Runtime, variant: str
) -> None:
    strategy = "spread" if variant.startswith("spread") else "earliest"
    await set_calling_policy(client, max_calls_per_minute=2, strategy=strategy)
    items = _items()
    if variant.startswith("a pinned"):
        items[15] = {**items[15], "scheduled": "2026-03-02T15:30:00Z"}
    planned = await client.post("/schedule", params={"dry_run": "true"}, json=items)
    written = await client.post("/schedule", json=items)
    assert planned.status_code == written.status_code == 200, written.text
    answers = written.json()
    assert _without_ids(answers) == _without_ids(planned.json())
    assert "at item 1" in answers[9]["error"]
    scheduled = {a["scheduled_task_id"] for a in answers if a["status"] == "scheduled"}
    assert len(scheduled) == 17
    async with runtime.sessions() as session:
        calls = set((await session.scalars(select(Call.id))).all())
        events = (await session.scalars(
            select(Event.subject_id).where(Event.type == "call.scheduled"))).all()  # fmt: skip
        minutes = {call.scheduled_minute for call in (await session.scalars(select(Call))).all()}
        jobs = (await session.scalars(select(Job.payload))).all()
    assert calls == scheduled
    assert sorted(events) == sorted(scheduled)
    assert {job["minute"] for job in jobs} == minutes


async def test_a_chunk_the_database_refuses_leaves_nothing_of_the_batch(
    client: httpx.AsyncClient, runtime: Runtime, database: Database
) -> None:
    """A statement failing in a later chunk fails the whole batch: the earlier chunks' calls,
    contacts, events and jobs, and the batch itself, go with it."""
    items = make_items(count=20)
    items[16]["name"] = "refused"
    try:
        async with runtime.sessions() as session:
            for statement in _REFUSING[database.kind]:
                await session.execute(text(statement))
            await session.commit()
        response = await client.post("/schedule", json=items)
    finally:
        async with runtime.sessions() as session:
            for statement in _DROPPING[database.kind]:
                await session.execute(text(statement))
            await session.commit()
    assert response.status_code == 500
    async with runtime.sessions() as session:
        for model in (Call, Contact, OutreachBatch, Job):
            assert await session.scalar(select(func.count()).select_from(model)) == 0
        events = select(func.count()).where(Event.type == "call.scheduled")
        assert await session.scalar(events) == 0


_REFUSING = {
    "postgres": [
        """CREATE FUNCTION test_refuse_call() RETURNS trigger AS $$ BEGIN
           IF NEW.name = 'refused' THEN RAISE EXCEPTION 'refused by a test'; END IF;
           RETURN NEW; END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER test_refuse_call BEFORE INSERT ON calls
           FOR EACH ROW EXECUTE FUNCTION test_refuse_call()""",
    ],
    "sqlite": [
        """CREATE TRIGGER test_refuse_call BEFORE INSERT ON calls WHEN NEW.name = 'refused'
           BEGIN SELECT RAISE(ABORT, 'refused by a test'); END""",
    ],
}
_DROPPING = {
    "postgres": [
        "DROP TRIGGER IF EXISTS test_refuse_call ON calls",
        "DROP FUNCTION IF EXISTS test_refuse_call()",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS test_refuse_call"],
}


@pytest.mark.postgres_only
async def test_chunked_batches_racing_over_the_same_numbers_create_each_call_once(
    live_server: LiveServer, runtime: Runtime
) -> None:
    """Three batches of the same twenty numbers in different orders, each in chunks, at once:
    one live call per number; every rejection names a call that was written."""
    items = make_items(count=20, exchange=556)
    orders = [items, items[::-1], items[10:] + items[:10]]
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=bearer(TEST_API_KEY), timeout=120
    ) as http:
        await http.patch("/tenants/me/policy", json={"calling": {"max_calls_per_minute": 1000}})
        responses = await asyncio.gather(*(http.post("/schedule", json=o) for o in orders))
    assert [r.status_code for r in responses] == [200] * 3, [r.text[:200] for r in responses]
    answers = [a for r in responses for a in r.json()]
    winners = {a["scheduled_task_id"] for a in answers if a["status"] == "scheduled"}
    assert len(winners) == 20
    named = {re.search(r"call_[0-9a-f]+", a["error"])[0] for a in answers  # type: ignore[index]
             if a["status"] == "rejected"}  # fmt: skip
    assert named <= winners
    async with runtime.sessions() as session:
        live = await session.execute(
            select(Call.phone_e164, func.count()).where(Call.status.in_(LIVE))
            .group_by(Call.phone_e164)
        )  # fmt: skip
        assert set(dict(live.all()).values()) == {1}


@pytest.mark.parametrize("pool", ["a connection to spare", "every connection taken"])
async def test_later_chunks_are_screened_for_opt_outs_and_live_calls(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, pool: str
) -> None:
    """Items in chunks after the first (on PostgreSQL screened while the chunk before is
    written, on a second connection when the pool has one to spare) are rejected as when the
    whole batch is screened first: an opted-out number, a number with a live call for the
    purpose, a number repeated from an earlier chunk (the planner's "same as item N")."""
    if pool == "every connection taken" and database.kind == "sqlite":
        pytest.skip("on SQLite every item is screened before the first write")
    items = make_items(count=20, exchange=557)
    stopped = await client.post(
        "/messages/inbound", json={"from": items[11]["phone"], "body": "STOP"}
    )
    assert stopped.json()["action"] == "opted_out"
    live = await client.post("/calls", json={"name": "Earlier", "phone": items[18]["phone"]})
    assert live.status_code == 201, live.text
    items[15] = {**items[4], "name": "Twin of item 4"}
    async with contextlib.AsyncExitStack() as held:
        if pool == "every connection taken":
            for _ in range(runtime.engine.pool.size()):  # type: ignore[attr-defined]
                await held.enter_async_context(runtime.engine.connect())
        response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert answers[11]["status"] == "rejected"
    assert answers[11]["error"].startswith("the recipient opted out of calls on ")
    assert answers[18]["status"] == "rejected"
    assert live.json()["id"] in answers[18]["error"]
    assert answers[15]["status"] == "rejected"
    assert "at item 4" in answers[15]["error"]
    assert [i for i, a in enumerate(answers) if a["status"] == "rejected"] == [11, 15, 18]
