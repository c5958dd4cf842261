"""A connection of an engine's pool taken as it is, for a driver's own call (`pg_direct`,
`sqlite_driver.on_connection_thread`): no SQLAlchemy Connection around it (two greenlet hops
less a request), and given back even when the request is cancelled.

With no SQLAlchemy Connection to see a disconnect, this does what its error handling does
(`Connection._handle_dbapi_exception`): a connection the server ended means the server may
have ended them all (a restart, a failover), so the whole pool is invalidated and every
connection it held is replaced on its next checkout (docs/architecture.md, "Borrowed
connections")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from anyio import CancelScope
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn


@asynccontextmanager
async def borrowed(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A pooled connection of `engine` (its `dbapi_connection` and `driver_connection`),
    never one the driver already knows closed; it goes back with nothing to roll back if the
    caller left no transaction open. If the driver finds it closed while in use (the server
    ended it), the request fails, and the pool is invalidated: no other request is lent a
    connection of that generation."""
    pooled = await _open_connection(engine)
    try:
        yield pooled
    except BaseException as exc:
        if _closed(pooled.driver_connection):
            with CancelScope(shield=True):
                await greenlet_spawn(_invalidate_pool, engine, pooled, exc)
        raise
    finally:
        with CancelScope(shield=True):  # a cancelled request still gives the connection back
            await greenlet_spawn(pooled.close)  # the pool may close it: SQLAlchemy's async hop


async def _open_connection(engine: AsyncEngine) -> Any:
    """A checked-out connection the driver does not know closed. asyncpg learns that the
    server ended an idle connection as soon as the event loop reads the socket; such a
    connection is given back with its pool invalidated (its siblings were most likely ended
    with it), and the one taken then is new."""
    pooled = await engine.raw_connection()
    if not _closed(pooled.driver_connection):
        return pooled
    with CancelScope(shield=True):
        await greenlet_spawn(_invalidate_pool, engine, pooled, None)
        await greenlet_spawn(pooled.close)
    return await engine.raw_connection()


def _invalidate_pool(engine: AsyncEngine, pooled: Any, exc: BaseException | None) -> None:
    """Invalidate `pooled` and every connection of the pool opened before it, as SQLAlchemy's
    Connection does on a disconnect (`Connection._handle_dbapi_exception` calls this private
    method of the pool; no public one invalidates a pool's generation without replacing the
    pool, which the reader engine shares: tests/test_call_read.py checks that it still does
    what this needs)."""
    engine.sync_engine.pool._invalidate(pooled, exc)


def _closed(driver_connection: Any) -> bool:
    """Whether the driver knows its connection closed (asyncpg's `is_closed`; sqlite3's
    connections are not ended by a server)."""
    is_closed = getattr(driver_connection, "is_closed", None)
    return bool(is_closed is not None and is_closed())


class DriverError(Exception):
    """A statement a driver ran itself (not through SQLAlchemy) failed. Its message names the
    statement and the driver's error (class, SQLSTATE), never the driver's message: that can
    quote the statement's values (asyncpg's "invalid input for query argument $1: '...'"),
    which SQLAlchemy's `hide_parameters` keeps out of its own errors, and the 500's log
    records the traceback."""

    def __init__(self, sql: str, error: Exception) -> None:
        kind = type(error)
        sqlstate = getattr(error, "sqlstate", None)
        code = f" (SQLSTATE {sqlstate})" if isinstance(sqlstate, str) else ""
        super().__init__(f"{_head(sql)!r} failed: {kind.__module__}.{kind.__qualname__}{code}")


@contextmanager
def values_hidden(sql: str) -> Iterator[None]:
    """Driver errors raised within as DriverError for `sql` (text with placeholders only),
    the driver's own left out of the chain (a traceback would print it)."""
    try:
        yield
    except Exception as error:
        raise DriverError(sql, error) from None


def _head(sql: str) -> str:
    """The start of a statement's text on one line: enough to tell which one it was."""
    return " ".join(sql.split())[:80]


@asynccontextmanager
async def under(on: AsyncConnection | AsyncEngine) -> AsyncIterator[Any]:
    """The pooled connection under `on`: a connection's own (inside the transaction begun
    there, if any), or one borrowed from an engine's pool for the call alone (a read that
    needs no SQLAlchemy Connection: ~20-40 µs less a request on PostgreSQL)."""
    if isinstance(on, AsyncEngine):
        async with borrowed(on) as pooled:
            yield pooled
    else:
        yield await on.get_raw_connection()
