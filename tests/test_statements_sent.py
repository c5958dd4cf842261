"""The tests' statement counter (`tests.support.statements_sent`) sees what is sent to the
database by every path once: through SQLAlchemy (a transaction's BEGIN and its end
included) and by the driver itself on a borrowed connection, which SQLAlchemy's events do
not see. Tests that claim a request costs no statement, or one, rest on it."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from caretime import pg_direct, sqlite_driver
from caretime.db import is_postgres
from caretime.runtime import Runtime
from caretime.tenancy.models import Tenant
from tests.support import make_tenant, statements_sent

_TENANT_NAME = select(Tenant.name).where(Tenant.id == bindparam("tenant_id"))


async def test_each_statement_is_seen_once_whichever_way_it_is_sent(runtime: Runtime) -> None:
    tenant_id, _ = await make_tenant(runtime, name="acme")
    params = {"tenant_id": tenant_id}
    async with statements_sent(runtime) as seen:
        async with runtime.engine.begin() as connection:  # SQLAlchemy, in a transaction
            assert (await connection.execute(_TENANT_NAME, params)).scalar_one() == "acme"
        async with runtime.read_engine.connect() as connection:  # SQLAlchemy, autocommit
            assert (await connection.execute(_TENANT_NAME, params)).scalar_one() == "acme"
        if is_postgres(runtime.engine):  # the driver itself, on a borrowed connection
            assert (await pg_direct.fetch_one(runtime.engine, _TENANT_NAME, params))[0] == "acme"
        else:
            assert await sqlite_driver.fetch_all(runtime.read_engine, _TENANT_NAME, params) == [
                ["acme"]
            ]

    verbs = sorted(statement.split()[0].upper().rstrip(";") for statement in seen)
    assert verbs == ["BEGIN", "COMMIT", "SELECT", "SELECT", "SELECT"]
    assert all("FROM tenants" in statement for statement in seen if "SELECT" in statement)
