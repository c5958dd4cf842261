"""A batch planned and written in chunks (outreach.pipeline): the same answers as the batch
planned whole, all or nothing, and one live call per number when chunked batches race."""

import asyncio
import contextlib
import re
import sqlite3
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from caretime.dispatch.models import Job
from caretime.events.models import Event
from caretime.outreach import pipeline, service, writing
from caretime.outreach.models import LIVE, Call, Contact, OutreachBatch
from caretime.runtime import Runtime
from tests.conftest import Database, LiveServer
from tests.outreach.support import (
    checked_out,
    make_items,
    refusing_inserts,
    set_calling_policy,
    use_small_chunks,
)
from tests.support import TEST_API_KEY, bearer


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few items, so that a batch of twenty spans several, planned in threads."""
    use_small_chunks(monkeypatch)


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
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A statement failing in a later chunk fails the whole batch: the earlier chunks' calls,
    contacts, events and jobs, and the batch itself, go with it. The fifth chunk (15-19) is
    refused while the last span is screened (on PostgreSQL, on a second connection): the
    request's connections all go back to the pool."""
    items = make_items(count=20)
    items[16]["name"] = "refused"
    at_each_write = _connections_at_each_write(monkeypatch, runtime)
    async with refusing_inserts(runtime, "calls"):
        await _two_idle_connections(runtime)
        before = checked_out(runtime)
        response = await client.post("/schedule", json=items)
        assert checked_out(runtime) == before
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert len(at_each_write) == 5
    if database.kind == "postgres":
        assert at_each_write[-1] == before + 2  # the reader screening the last span beside
    async with runtime.sessions() as session:
        for model in (Call, Contact, OutreachBatch, Job):
            assert await session.scalar(select(func.count()).select_from(model)) == 0
        events = select(func.count()).where(Event.type == "call.scheduled")
        assert await session.scalar(events) == 0


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


async def _two_idle_connections(runtime: Runtime) -> None:
    """Two connections opened and given back: the pool then has one idle beside the one a
    request takes (a busy server's pool does; a test's has at most one after serial calls).
    PostgreSQL's: on SQLite the second would wait for the first's write lock."""
    if runtime.engine.dialect.name != "postgresql":
        return
    async with runtime.engine.connect() as one, runtime.engine.connect() as two:
        for connection in (one, two):
            await connection.execute(text("SELECT 1"))


def _connections_at_each_write(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> list[int]:
    """The pool's checked-out connections as each chunk's write starts."""
    seen: list[int] = []
    write_rows = pipeline.write_rows

    async def counted(*args: Any, **kwargs: Any) -> set[str]:
        seen.append(checked_out(runtime))
        return await write_rows(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_rows", counted)
    return seen


async def _screened_items(client: httpx.AsyncClient) -> tuple[list[dict[str, Any]], str]:
    """Twenty items; in chunks after the first an opted-out number (11), a number repeated
    from the first chunk (15) and a number with a live call (18, whose id is returned)."""
    items = make_items(count=20, exchange=557)
    stopped = await client.post(
        "/messages/inbound", json={"from": items[11]["phone"], "body": "STOP"}
    )
    assert stopped.json()["action"] == "opted_out"
    live = await client.post("/calls", json={"name": "Earlier", "phone": items[18]["phone"]})
    assert live.status_code == 201, live.text
    items[15] = {**items[4], "name": "Twin of item 4"}
    return items, live.json()["id"]


def _assert_screened(answers: list[dict[str, Any]], live_id: str) -> None:
    assert answers[11]["status"] == "rejected"
    assert answers[11]["error"].startswith("the recipient opted out of calls on ")
    assert answers[18]["status"] == "rejected"
    assert live_id in answers[18]["error"]
    assert answers[15]["status"] == "rejected"
    assert "at item 4" in answers[15]["error"]
    assert [i for i, a in enumerate(answers) if a["status"] == "rejected"] == [11, 15, 18]


@pytest.mark.parametrize("pool", ["a connection to spare", "every connection taken"])
async def test_later_chunks_are_screened_for_opt_outs_and_live_calls(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Items in chunks after the first (on PostgreSQL screened while the chunk before is
    written, on a second connection when the pool has one to spare) are rejected as when the
    whole batch is screened first: an opted-out number, a number with a live call for the
    purpose, a number repeated from an earlier chunk (the planner's "same as item N"). The
    second connection is held while there is a span left to screen, no longer."""
    if pool == "every connection taken" and database.kind == "sqlite":
        pytest.skip("on SQLite every item is screened before the first write")
    items, live_id = await _screened_items(client)
    at_each_write = _connections_at_each_write(monkeypatch, runtime)
    async with contextlib.AsyncExitStack() as held:
        if pool == "every connection taken":
            for _ in range(runtime.engine.pool.size()):  # type: ignore[attr-defined]
                await held.enter_async_context(runtime.engine.connect())
        before = checked_out(runtime)
        response = await client.post("/schedule", json=items)
        assert checked_out(runtime) == before
    assert response.status_code == 200, response.text
    _assert_screened(response.json(), live_id)
    assert len(at_each_write) == 6  # chunks of 3, 4, 4, 4, 4 and 1 items
    if pool == "a connection to spare" and database.kind == "postgres":
        # The reader beside the writer until the last span (19-20) is screened, during the
        # fifth chunk's write; given back before the sixth's.
        assert at_each_write == [before + 2] * 5 + [before + 1]
    else:
        assert at_each_write == [before + 1] * 6


@pytest.mark.postgres_only
@pytest.mark.parametrize("pool", ["no idle connection", "an idle connection"])
async def test_a_second_connection_refused_leaves_the_batch_screened_first(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a request holds a connection, every other checkout is refused, as a database at
    max_connections or a network fault refuses a connection opened (none idle, or an idle
    one found dead). The second connection is sought before the tenant's capacity is locked
    (a connection opened under the lock would hold it through TCP and authentication), and
    its refusal leaves the batch screened whole first: answered and written as usual."""
    items, live_id = await _screened_items(client)
    await runtime.engine.dispose()  # an empty pool: nothing idle
    if pool == "an idle connection":
        await _two_idle_connections(runtime)
    opened: list[int] = []
    order: list[str] = []
    lock_tenant = writing.lock_tenant

    async def lock_and_say_so(*args: Any) -> None:
        order.append("capacity locked")
        await lock_tenant(*args)

    def count_opened(*_: Any) -> None:
        opened.append(1)

    def refuse_a_second(*_: Any) -> None:
        if checked_out(runtime) > 1:
            order.append("second connection refused")
            raise ConnectionRefusedError("refused by a test")

    monkeypatch.setattr(writing, "lock_tenant", lock_and_say_so)
    sync_engine = runtime.engine.sync_engine
    event.listen(sync_engine, "connect", count_opened)
    event.listen(sync_engine, "checkout", refuse_a_second)
    try:
        response = await client.post("/schedule", json=items)
    finally:
        event.remove(sync_engine, "checkout", refuse_a_second)
        event.remove(sync_engine, "connect", count_opened)
    assert response.status_code == 200, response.text
    _assert_screened(response.json(), live_id)
    assert order == ["second connection refused", "capacity locked"]
    # With none idle, the request's own and the refused second were opened; else neither.
    assert len(opened) == (2 if pool == "no idle connection" else 0)
    assert checked_out(runtime) == 0
    async with runtime.sessions() as session:
        written = select(func.count()).select_from(Call).where(Call.batch_id.is_not(None))
        assert await session.scalar(written) == 17


async def test_a_dry_run_parses_its_items_before_taking_sqlites_write_lock(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run writes nothing: other writers must not wait for it while it parses (up to
    100,000 items). Each item's parse (in a worker thread here) tries SQLite's write lock."""
    if database.kind != "sqlite":
        pytest.skip("SQLite's write lock")
    path = make_url(database.url).database
    assert path is not None
    lock_free: list[bool] = []
    parse_item = service.parse_item

    def parse_and_try_the_lock(raw: Any, **kwargs: Any) -> Any:
        if not lock_free:
            time.sleep(0.2)  # time enough for a lock taken at once to be held
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            lock_free.append(True)
        except sqlite3.OperationalError:
            lock_free.append(False)
        finally:
            other.close()
        return parse_item(raw, **kwargs)

    monkeypatch.setattr(service, "parse_item", parse_and_try_the_lock)
    response = await client.post("/schedule", params={"dry_run": "true"}, json=make_items(count=20))
    assert response.status_code == 200, response.text
    assert lock_free == [True] * 20
