"""The request path of an authenticated read (docs/benchmarks.md, K2): the key check is a
dependency of its own that names the actor (the edge set `system` for the request), and a
read request's session has no SQLAlchemy transaction around it, yet keeps what `transaction`
promised (pending changes committed, `after_commit` work run after it)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from caretime.db import after_commit, reading
from caretime.edge import EdgeMiddleware
from caretime.events import SYSTEM, current_actor, set_actor
from caretime.runtime import Runtime
from caretime.tenancy.models import Tenant
from tests.support import bearer, make_tenant


async def test_a_change_made_after_the_key_check_is_acted_by_the_key(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # PATCH /calls/{id} names the tenant before its session: FastAPI opens the session after
    # the key check, and the session must not reset the actor to `system`.
    _, key = await make_tenant(runtime, name="acme")
    created = await anon_client.post(
        "/calls", json={"name": "Pat Doe", "phone": "+12065550123"}, headers=bearer(key)
    )
    assert created.status_code == 201, created.text
    call_id = created.json()["id"]
    assert (await anon_client.get(f"/calls/{call_id}", headers=bearer(key))).status_code == 200

    cancelled = await anon_client.delete(f"/calls/{call_id}", headers=bearer(key))
    assert cancelled.status_code == 200, cancelled.text
    events = (await anon_client.get(f"/calls/{call_id}/events", headers=bearer(key))).json()

    assert [event["actor"][:4] for event in events["items"]] == ["key:"] * len(events["items"])


async def test_each_request_acts_as_system_until_authentication_names_someone() -> None:
    # httpx's ASGI transport runs every request in the test's own task and context, as a
    # server may run several on one connection's: a former request's actor is left there.
    seen: list[str] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(current_actor())
        await Response(b"")(scope, receive, send)

    set_actor("key:key_of_a_former_request")
    edge = EdgeMiddleware(endpoint, max_body_bytes=1024)
    transport = httpx.ASGITransport(app=edge)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/anything")).status_code == 200
    assert seen == [SYSTEM]


async def test_a_read_session_commits_what_was_left_pending_then_runs_after_commit_work(
    runtime: Runtime,
) -> None:
    ran: list[str] = []

    async def note(_: AsyncSession) -> None:
        ran.append("after")

    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    async with reading(runtime.read_sessions) as session:
        session.add(Tenant(id="ten_pending", name="pending", created_at=now))
        after_commit(session, note)
    assert ran == ["after"]
    async with reading(runtime.read_sessions) as session:
        stored = await session.get(Tenant, "ten_pending")
    assert stored is not None
    assert stored.name == "pending"


async def test_a_read_session_that_raises_runs_no_after_commit_work(runtime: Runtime) -> None:
    ran: list[str] = []

    async def note(_: AsyncSession) -> None:
        ran.append("after")

    async def fail() -> None:
        async with reading(runtime.read_sessions) as session:
            after_commit(session, note)
            raise LookupError

    with pytest.raises(LookupError):
        await fail()
    assert ran == []


async def test_a_transaction_opened_on_a_reader_connection_is_still_committed(
    runtime: Runtime,
) -> None:
    # A SQLite reader skips the driver's COMMIT only when no transaction is open.
    async with runtime.read_engine.connect() as connection:
        await connection.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS scratch (n INTEGER)"))
        if runtime.read_engine.dialect.name == "sqlite":
            await connection.exec_driver_sql("BEGIN")
        await connection.execute(text("INSERT INTO scratch VALUES (1)"))
        await connection.commit()
        raw = await connection.get_raw_connection()
        if runtime.read_engine.dialect.name == "sqlite":
            assert not raw.driver_connection._conn.in_transaction  # type: ignore[union-attr]
        assert (await connection.execute(text("SELECT count(*) FROM scratch"))).scalar() == 1


@pytest.mark.parametrize(
    ("path", "sessions"),
    [("/tenants/me", 0), ("/tenants/me/policy", 0), ("/calls/call_missing", 0), ("/calls", 1)],
)
async def test_a_cache_hit_read_opens_a_session_only_for_a_route_that_takes_one(
    anon_client: httpx.AsyncClient, runtime: Runtime, path: str, sessions: int
) -> None:
    # The key check and the policy version's read need no session of the request: a route
    # that takes none opens none (`GET /calls/{id}` reads on a reader connection), and each
    # read checks out one connection.
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get(path, headers=bearer(key))).status_code in {200, 404}
    checkouts: list[object] = []
    begun: list[object] = []
    pool = runtime.read_engine.sync_engine.pool
    event.listen(pool, "checkout", lambda *seen: checkouts.append(seen))
    reader = runtime.read_engine.sync_engine
    session_class = runtime.read_sessions.kw["sync_session_class"]

    def note_session(session: Session, _transaction: object) -> None:
        if session.bind is reader and _transaction is session.get_transaction():
            begun.append(session)

    event.listen(session_class, "after_transaction_create", note_session)
    try:
        assert (await anon_client.get(path, headers=bearer(key))).status_code in {200, 404}
    finally:
        event.remove(session_class, "after_transaction_create", note_session)
    assert len(checkouts) == 1
    assert len(begun) == sessions
