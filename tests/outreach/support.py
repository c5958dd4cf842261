"""Builders for outreach tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text

from caretime.dispatch.models import Job
from caretime.messaging.providers.mock_agent import MockAgent
from caretime.outreach import pipeline
from caretime.outreach.models import PENDING, Call
from caretime.outreach.writing import PLACE_MINUTE
from caretime.runtime import Runtime
from tests.fakes.support import free_port

# A verbatim copy of the sample body from the system POST /schedule replaces (shared/data).
SAMPLE_PAYLOAD = Path(__file__).parent / "data" / "schedule-sample-payload.json"


def use_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches in chunks of a few items (3, then 4), larger spans planned in threads: later
    chunks are screened while earlier ones are written (on PostgreSQL on a second
    connection, which does not see the batch's own rows)."""
    monkeypatch.setattr(pipeline, "FIRST_CHUNK", 3)
    monkeypatch.setattr(pipeline, "CHUNK", 4)
    monkeypatch.setattr(pipeline, "INLINE_ITEMS", 5)


@asynccontextmanager
async def refusing_inserts(runtime: Runtime, table: str) -> AsyncIterator[None]:
    """For the while, the database refuses a row of `table` whose name is 'refused' (a
    trigger raising, as a constraint would)."""
    postgres = runtime.engine.dialect.name == "postgresql"
    trigger = f"test_refuse_{table}"
    if postgres:
        create = [
            f"""CREATE FUNCTION {trigger}() RETURNS trigger AS $$ BEGIN
               IF NEW.name = 'refused' THEN RAISE EXCEPTION 'refused by a test'; END IF;
               RETURN NEW; END $$ LANGUAGE plpgsql""",
            f"""CREATE TRIGGER {trigger} BEFORE INSERT ON {table}
               FOR EACH ROW EXECUTE FUNCTION {trigger}()""",
        ]
        drop = [
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"DROP FUNCTION IF EXISTS {trigger}()",
        ]
    else:
        create = [
            f"""CREATE TRIGGER {trigger} BEFORE INSERT ON {table} WHEN NEW.name = 'refused'
               BEGIN SELECT RAISE(ABORT, 'refused by a test'); END"""
        ]
        drop = [f"DROP TRIGGER IF EXISTS {trigger}"]
    await _run_all(runtime, create)
    try:
        yield
    finally:
        await _run_all(runtime, drop)


async def _run_all(runtime: Runtime, statements: list[str]) -> None:
    async with runtime.sessions() as session:
        for statement in statements:
            await session.execute(text(statement))
        await session.commit()


def checked_out(runtime: Runtime) -> int:
    """The connections of the runtime's pool in use."""
    return int(runtime.engine.pool.checkedout())  # type: ignore[attr-defined]


def sample_payload() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(SAMPLE_PAYLOAD.read_text())
    return loaded


def make_items(*, count: int, exchange: int = 555, area: int = 212) -> list[dict[str, str]]:
    return [{"name": f"Patient {i}", "phone": f"{area}-{exchange}-{i:04d}"} for i in range(count)]


async def set_calling_policy(client: httpx.AsyncClient, **calling: Any) -> None:
    response = await client.patch("/tenants/me/policy", json={"calling": calling})
    assert response.status_code == 200, response.text


async def queued_jobs_for(runtime: Runtime, call_id: str) -> list[Job]:
    """The queued jobs that will place this call: its minute's job while it is pending
    (calls due in one minute share one job), none once it is cancelled or started."""
    async with runtime.sessions() as session:
        call = await session.get(Call, call_id)
        if call is None or call.status != PENDING:
            return []
        jobs = await session.scalars(
            select(Job).where(
                Job.status == "queued",
                Job.tenant_id == call.tenant_id,
                Job.kind == PLACE_MINUTE,
                Job.payload["minute"].as_integer() == call.scheduled_minute,
            )
        )
        return list(jobs)


@contextmanager
def serving_agent(agent: MockAgent) -> Iterator[str]:
    """The mock agent on a loopback port, in a thread; yields its calls URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(agent.app(), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "mock agent did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/calls"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
