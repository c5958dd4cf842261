"""A slot search's statement run by the driver itself (asyncpg, or sqlite3 in one hop) answers
SQLAlchemy's rows, converted alike (dates, aware UTC instants), for every kind of search;
on a session's connection it sees what that session's transaction wrote and has not
committed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from caretime import pg_direct, sqlite_driver
from caretime.booking import slot_reads, slots
from caretime.booking.models import Appointment
from caretime.db import is_postgres, transaction
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from caretime.tenancy.models import ApiKey
from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    make_visit_type,
)

SEARCHED = datetime(2026, 3, 10, tzinfo=UTC)


async def _place(client: httpx.AsyncClient) -> None:
    """Rules of every kind (dated, weekly with and without an end, time off) and busy time."""
    await make_provider(client)
    windows = [
        {"date": "2026-03-10", "start": "08:00", "end": "12:00"},
        {"weekdays": ["tue"], "start": "13:00", "end": "15:00", "from": "2026-03-01"},
        {
            "weekdays": ["wed"],
            "start": "09:00",
            "end": "10:00",
            "from": "2026-03-01",
            "until": "2026-03-31",
        },
        {"date": "2026-03-10", "start": "14:00", "end": "14:30", "action": "remove"},
    ]
    await make_availability(client, windows=windows)
    await make_visit_type(client, id="long", minutes=45, before=15)
    await make_reservation(client, slot_start="2026-03-10T13:00:00Z")


async def test_the_drivers_rows_are_sqlalchemys_for_every_kind_of_search(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _place(client)
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
        key_id = (await session.execute(select(ApiKey.id))).scalars().first()
    async with runtime.read_engine.connect() as connection:
        postgres = is_postgres(connection)
        for by_id, with_visit_type, with_key in itertools.product((False, True), repeat=3):
            statement = slot_reads._statement(postgres, by_id, with_visit_type, with_key)
            parameters = _parameters(tenant.id, postgres, by_id, with_visit_type, with_key)
            parameters["now"] = runtime.clock.now()
            if with_key:
                parameters["key_id"] = key_id
            direct = await _fetch_directly(connection, statement, parameters)
            through_sqlalchemy = (await connection.execute(statement, parameters)).all()

            assert [tuple(row) for row in direct] == [tuple(r) for r in through_sqlalchemy]
            assert any(row[0] == slot_reads._BUSY for row in direct)  # instants converted


async def test_a_search_on_a_session_sees_its_uncommitted_writes(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _place(client)
    query = slots.SlotQuery(["dr-jekyll"], SEARCHED, SEARCHED + timedelta(days=1))
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
        before = await slots.read_slot_search(
            await session.connection(), tenant.id, query, now=runtime.clock.now()
        )
        visit = (await session.execute(select(Appointment))).scalars().one()
        visit.status = "cancelled"
        await session.flush()
        after = await slots.read_slot_search(
            await session.connection(), tenant.id, query, now=runtime.clock.now()
        )
        await session.rollback()

    assert len(before.busy["dr-jekyll"]) == 1
    assert after.busy == {}


@pytest.mark.postgres_only
async def test_postgresql_plans_a_search_once_per_connection(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Its values out of the planner's sight (slot_reads._planned_once), the search's prepared
    statement gets PostgreSQL's generic plan after its five trial executions; with them in
    sight it was planned again on every execution (docs/booking.md, "Slot search")."""
    await _place(client)
    await make_provider(client, id="busy")
    query = slots.SlotQuery(["dr-jekyll"], SEARCHED, SEARCHED + timedelta(days=1))
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
        # A tenant's other visits, weeks of them: with their statistics, a plan for the
        # values at hand looks far cheaper than one for any values.
        await session.execute(_MANY_VISITS, {"tenant_id": tenant.id, "first": SEARCHED})
    async with runtime.read_engine.connect() as connection:
        await connection.execute(text("ANALYZE providers, availability, appointments"))
        for _ in range(8):
            found = await slots.read_slot_search(
                connection, tenant.id, query, now=runtime.clock.now()
            )
        statement = slot_reads._statement(True, True, False, False)
        sent = pg_direct.prepared(statement, connection.dialect)
        plans = await connection.execute(
            text("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                 "WHERE statement = :sql"),
            {"sql": sent.sql},
        )  # fmt: skip
        generic, custom = plans.one()

    assert len(found.busy["dr-jekyll"]) == 1
    assert (generic, custom) == (3, 5)


_MANY_VISITS = text(
    "INSERT INTO appointments (tenant_id, id, provider_id, client_id, slot_start, slot_end, "
    "occupied_start, occupied_end, status, hold_expires_at, created_at, updated_at) "
    "SELECT :tenant_id, 'v' || n, 'busy', 'c', at, at + interval '15 minutes', at, "
    "at + interval '15 minutes', 'confirmed', at, at, at FROM ("
    "SELECT n, CAST(:first AS timestamptz) + n * interval '15 minutes' AS at "
    "FROM generate_series(1, 3000) AS n) AS visits"
)


def _parameters(
    tenant_id: str, postgres: bool, by_id: bool, with_visit_type: bool, with_key: bool
) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "tenant_id": tenant_id,
        "first": SEARCHED.date() - timedelta(days=2),
        "last": SEARCHED.date() + timedelta(days=2),
        "busy_start": SEARCHED - timedelta(days=1),
        "busy_floor": SEARCHED - timedelta(days=2),
        "busy_end": SEARCHED + timedelta(days=2),
        "near_start": SEARCHED - timedelta(hours=3),
        "near_end": SEARCHED + timedelta(days=1, hours=3),
    }
    if with_visit_type:
        parameters["visit_type"] = "long"
    if by_id:
        parameters["ids"] = ["dr-jekyll"] if postgres else '["dr-jekyll"]'
    return parameters


async def _fetch_directly(connection: Any, statement: Any, parameters: dict[str, Any]) -> Any:
    if is_postgres(connection):
        return await pg_direct.fetch_all(connection, statement, parameters)
    return await sqlite_driver.fetch_all(connection, statement, parameters)
