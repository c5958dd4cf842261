"""`GET /calls/{id}` reads the call and its attempts by the driver itself (asyncpg, sqlite3)
on a connection borrowed from the reader pool, not through the ORM (docs/benchmarks.md,
"calls4"): what it answers must be what the ORM's entities would show, field for field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from caretime.db import reading, transaction
from caretime.outreach import calls as call_service
from caretime.outreach.models import Call, CallAttempt
from caretime.outreach.repository import CallView
from caretime.outreach.router import call_out
from caretime.runtime import Runtime
from tests.support import bearer, end_the_pools_connections, make_tenant

MOMENT = datetime(2026, 3, 2, 17, 30, 0, 123456, tzinfo=UTC)


async def create(client: httpx.AsyncClient) -> str:
    response = await client.post("/calls", json={"name": "Ann Lée", "phone": "212-555-0100"})
    assert response.status_code == 201, response.text
    call_id: str = response.json()["id"]
    return call_id


async def as_the_orm_shows_it(runtime: Runtime, tenant_id: str, call_id: str) -> Any:
    """The call's JSON built from its ORM entities, as the routes that load them answer."""
    async with reading(runtime.read_sessions) as session:
        call = await call_service.get_call(session, tenant_id, call_id)
        attempts = await call_service.attempts_of(session, tenant_id, call_id)
        return call_out(call, attempts).model_dump(mode="json")


async def tenant_of(runtime: Runtime, call_id: str) -> str:
    async with reading(runtime.read_sessions) as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call.tenant_id


def attempt(call: Call, number: int, **optional: Any) -> CallAttempt:
    return CallAttempt(
        id=f"att_{call.id}_{number}",
        tenant_id=call.tenant_id,
        call_id=call.id,
        contact_id=call.contact_id,
        number=number,
        status="completed" if optional else "ringing",
        history=optional.pop("history", []),
        started_at=MOMENT + timedelta(hours=number),
        **optional,
    )


def test_the_read_names_calls_columns_in_the_tables_order() -> None:
    # The row's first columns are read into a CallView by position.
    assert CallView._fields == tuple(column.key for column in Call.__table__.c)


async def test_a_call_with_every_optional_field_set_reads_as_the_orm_shows_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    call_id = await create(client)
    tenant_id = await tenant_of(runtime, call_id)
    async with transaction(runtime.sessions) as session:
        call = await session.get(Call, call_id)
        assert call is not None
        call.batch_id, call.series_id = "bat_set", "ser_set"
        call.purpose, call.script, call.allow_duplicate = "flu shots", "Hello {name}", True
        call.variables = {"clinic": "Nord", "count": 2, "nested": {"list": [1, None, "ü"]}}
        call.outcome, call.pinned, call.attempts = "reached", True, 2
        call.scheduled_at = call.updated_at = MOMENT
        # Added second first: the read must order the attempts by number, not by insertion.
        session.add(attempt(call, 2))
        session.add(
            attempt(
                call,
                1,
                message_id="CA123",
                ended_at=MOMENT + timedelta(hours=1, minutes=3),
                disposition="reached",
                summary="Confirmed Tuesday.",
                history=[{"status": "ringing", "at": "2026-03-02T18:30:00Z"}],
            )
        )

    response = await client.get(f"/calls/{call_id}")

    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown == await as_the_orm_shows_it(runtime, tenant_id, call_id)
    assert [a["number"] for a in shown["attempt_history"]] == [1, 2]
    assert shown["attempt_history"][0]["ended_at"] == "2026-03-02T18:33:00.123456Z"
    assert shown["variables"]["nested"] == {"list": [1, None, "ü"]}
    assert shown["scheduled"] == "2026-03-02T17:30:00.123456Z"


async def test_a_call_with_every_optional_field_unset_reads_as_the_orm_shows_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    call_id = await create(client)

    response = await client.get(f"/calls/{call_id}")

    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown == await as_the_orm_shows_it(runtime, await tenant_of(runtime, call_id), call_id)
    assert shown["attempt_history"] == []
    assert shown["variables"] is None
    assert shown["purpose"] is None


async def test_another_tenants_call_is_not_found_as_an_unknown_id_is(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    call_id = await create(client)
    _, other_key = await make_tenant(runtime, name="other clinic")
    unknown = "call_" + "0" * (len(call_id) - len("call_"))

    theirs = await client.get(f"/calls/{call_id}", headers=bearer(other_key))
    nobodys = await client.get(f"/calls/{unknown}", headers=bearer(other_key))

    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.headers["content-type"] == nobodys.headers["content-type"]
    # The same problem, but for the id each named and the request each was.
    expected = {**nobodys.json(), "detail": f"no call {call_id!r}"}
    assert theirs.json() == {**expected, "request_id": theirs.json()["request_id"]}


@pytest.mark.postgres_only
async def test_no_request_fails_on_connections_the_database_ended_while_idle(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # The read borrows a pooled connection with no SQLAlchemy Connection around it to notice
    # a dead one (`pooled.borrowed`): one asyncpg already knows closed is never used, and
    # finding one renews the whole pool, as after a restart of the database.
    call_id = await create(client)
    assert (await client.get(f"/calls/{call_id}")).status_code == 200
    ended = await end_the_pools_connections(runtime)

    answers = [(await client.get(f"/calls/{call_id}")).status_code for _ in range(ended + 3)]

    assert ended >= 1
    # At most one request a process fails (asyncpg may not yet have read the end of a
    # connection when it is next lent); then the pool is renewed and all answer.
    assert answers.count(500) <= 1
    assert answers[-3:] == [200] * 3
    assert set(answers) <= {200, 500}
