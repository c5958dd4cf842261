"""Helpers for tests: keyword-only builders and small conveniences."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from caretime.db import transaction
from caretime.direct_routes import DirectRoute
from caretime.observability import THIRD_PARTY_LOGGERS, configure_logging
from caretime.pooled import borrowed
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy

TEST_API_KEY = "ct_test_bootstrap_key"


async def make_tenant(runtime: Runtime, *, name: str) -> tuple[str, str]:
    """Create a tenant with one key; returns (tenant_id, plaintext key)."""
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.create_tenant(session, name, now=runtime.clock.now())
        _, key = await tenancy.create_key(session, tenant, now=runtime.clock.now())
    return tenant.id, key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def logging_as_served(level: str) -> Iterator[logging.StreamHandler[io.StringIO]]:
    """configure_logging as `caretime serve` calls it at `level`, its handler writing into a
    buffer (the handler's stream); the configuration before it is restored after."""
    root = logging.getLogger()
    names = ("caretime", *THIRD_PARTY_LOGGERS)
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names})
    configure_logging(level, as_json=True)
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    yield handler
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level_number in saved[2].items():
        logging.getLogger(name).setLevel(level_number)


async def end_the_pools_connections(runtime: Runtime, *, at_least: int = 3) -> int:
    """End, from outside, every PostgreSQL connection of the pool idle in it, `at_least` of
    them (as a restart of the server or an idle timeout would), waiting until their server
    processes are gone; how many were idle there."""
    async with AsyncExitStack() as stack:  # open that many, all back in the pool after
        for _ in range(at_least):
            await stack.enter_async_context(borrowed(runtime.engine))
    ended: int = runtime.engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
    outside = create_async_engine(runtime.settings.database_url, poolclass=NullPool)
    async with outside.connect() as admin:  # not one of the pool's
        await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await outside.dispose()
    return ended


def runtime_engines(runtime: Runtime) -> list[Engine]:
    """The runtime's engines, each pool once (SQLite's readers have a pool of their own)."""
    engines = [runtime.engine.sync_engine]
    if runtime.read_engine.sync_engine.pool is not runtime.engine.sync_engine.pool:
        engines.append(runtime.read_engine.sync_engine)
    return engines


@asynccontextmanager
async def statements_sent(runtime: Runtime) -> AsyncIterator[list[str]]:
    """Every statement sent to the database while the block runs, by whatever path: through
    SQLAlchemy, or by the driver itself on a borrowed connection (`pg_direct`,
    `sqlite_driver`), which SQLAlchemy's events never see. Left out: the batched write of
    keys' last use (a background flush that may fall inside any block). See `SentStatements`
    for how each database's are seen."""
    sent = SentStatements(runtime_engines(runtime), leave_out=("UPDATE API_KEYS",))
    sent.listen()
    try:
        yield sent.seen
        await asyncio.sleep(0)  # asyncpg's query logger is called soon after, not at once
    finally:
        sent.remove()


class SentStatements:
    """Statements noted at the driver on each pooled connection while it is checked out
    (hooked first at checkout, so the idle connection's ping is seen too; a connection
    already checked out when counting starts is not hooked: count between requests).

    SQLite: sqlite3's trace callback, which sees each statement the connection runs (the
    COMMIT or ROLLBACK of `commit()` and `rollback()` included; an executemany's once a
    row). PostgreSQL: asyncpg's query logger sees what asyncpg sends by its connection's own
    methods (a BEGIN and its end, a read by `fetch`/`fetchrow`, an executemany); SQLAlchemy's
    other statements go by asyncpg prepared statements, which it does not log, so those are
    noted at SQLAlchemy's cursor, the moment before the driver sends them."""

    def __init__(self, engines: Sequence[Engine], *, leave_out: tuple[str, ...] = ()) -> None:
        self.engines = engines
        self.leave_out = leave_out  # statements that start so (in capitals) are not noted
        self.seen: list[str] = []  # appended to from SQLite's threads too

    def listen(self) -> None:
        for engine in self.engines:
            event.listen(engine, "checkout", self._hook, insert=True)
            event.listen(engine, "checkin", self._unhook)
            if engine.dialect.name == "postgresql":
                event.listen(engine, "before_cursor_execute", self._note_prepared)

    def remove(self) -> None:
        for engine in self.engines:
            event.remove(engine, "checkout", self._hook)
            event.remove(engine, "checkin", self._unhook)
            if engine.dialect.name == "postgresql":
                event.remove(engine, "before_cursor_execute", self._note_prepared)

    def _note(self, statement: str) -> None:
        if not statement.lstrip().upper().startswith(self.leave_out):
            self.seen.append(statement)

    def _logged(self, query: Any) -> None:  # asyncpg's LoggedQuery
        self._note(query.query)

    def _note_prepared(self, *cursor_execute: Any) -> None:
        _conn, _cursor, statement, _parameters, _context, executemany = cursor_execute
        if not executemany:  # asyncpg logs an executemany itself
            self._note(statement)

    def _hook(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        driver = record.driver_connection
        if hasattr(driver, "add_query_logger"):  # asyncpg's
            driver.add_query_logger(self._logged)
        else:  # aiosqlite's, over sqlite3's (opened off its thread: check_same_thread off)
            driver._conn.set_trace_callback(self._note)

    def _unhook(self, _dbapi: Any, record: Any) -> None:
        driver = record.driver_connection
        if driver is None:  # invalidated
            return
        if hasattr(driver, "remove_query_logger"):
            driver.remove_query_logger(self._logged)
        elif driver._connection is not None:  # sqlite3's, None once closed
            driver._connection.set_trace_callback(None)


def direct_routes(app: FastAPI) -> list[DirectRoute]:
    """The routes `app` answers directly (caretime.direct_routes), first in its routes."""
    return [route for route in app.router.routes if isinstance(route, DirectRoute)]


def direct_route(app: FastAPI, path: str) -> DirectRoute:
    """The one route of `app` that answers `path` directly."""
    (route,) = [route for route in direct_routes(app) if route.path_format == path]
    return route


@contextmanager
def without_direct_routes(app: FastAPI) -> Iterator[None]:
    """The app as FastAPI alone answers it: its direct routes taken out for the while."""
    direct = direct_routes(app)
    for route in direct:
        app.router.routes.remove(route)
    try:
        yield
    finally:
        app.router.routes[:0] = direct
