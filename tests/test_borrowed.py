"""A pooled connection borrowed for a driver's own call (`pooled.borrowed`: `pg_direct`,
`sqlite_driver`), with no SQLAlchemy Connection around it: a disconnect found there renews
the whole pool as SQLAlchemy's own error handling does, and the driver's errors leave the
statement's values out of what is raised and logged."""

from __future__ import annotations

import traceback
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from caretime import pg_direct, sqlite_driver
from caretime.db import is_postgres
from caretime.pooled import DriverError, borrowed
from caretime.runtime import Runtime

# What a patient's data could look like in a statement's values.
PHI = "Ann Lée 212-555-0100"
_NUMBER = select(bindparam("n", type_=Integer))


async def server_pids(engine: AsyncEngine, count: int) -> set[int]:
    """The server processes of `count` connections of `engine`'s pool, borrowed at once."""
    async with AsyncExitStack() as stack:
        lent = [await stack.enter_async_context(borrowed(engine)) for _ in range(count)]
        return {pooled.driver_connection.get_server_pid() for pooled in lent}


@pytest.mark.postgres_only
async def test_a_connection_ended_while_in_use_renews_the_whole_pool(runtime: Runtime) -> None:
    # A restart ends every connection; those the process has not yet seen closed must not
    # each fail a request of their own: the first one found dead in use retires them all.
    engine = runtime.read_engine
    before = await server_pids(engine, 3)

    with pytest.raises(DriverError):
        await pg_direct.fetch_one(
            engine, select(func.pg_terminate_backend(func.pg_backend_pid())), {}
        )

    after = await server_pids(engine, 3)
    assert len(before) == len(after) == 3
    assert not before & after


async def read_number(engine: AsyncEngine, value: object) -> object:
    """`value` read back as an integer by the driver itself."""
    if is_postgres(engine):
        return (await pg_direct.fetch_one(engine, _NUMBER, {"n": value}))[0]
    return (await sqlite_driver.fetch_all(engine, _NUMBER, {"n": value}))[0][0]


async def test_a_direct_read_the_driver_refuses_names_no_value(runtime: Runtime) -> None:
    # asyncpg's own message quotes the value ("invalid input for query argument $1: ..."),
    # and the 500's log line carries the traceback.
    engine = runtime.read_engine
    refused = PHI if is_postgres(engine) else {PHI: PHI}  # sqlite3 binds a str as text

    with pytest.raises(DriverError) as raised:
        await read_number(engine, refused)

    logged = "".join(traceback.format_exception(raised.value))
    assert PHI not in logged
    assert "SELECT" in str(raised.value)
    assert await read_number(engine, 7) == 7  # the pool's connection still serves
