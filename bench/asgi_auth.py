"""CPU and statements per authenticated request in process: `GET /tenants/me` and `GET
/calls/{id}` called on caretime's ASGI app directly (no server, no sockets), beside
bench/bare_app.py's one-SELECT twin on the same database, 16 callers at once.

    .venv/bin/python bench/asgi_auth.py [sqlite|postgres] [batches] [requests per batch]

Without a database named, both are measured in turn. Logs go to stderr as JSON at
CARETIME_BENCH_LOG_LEVEL (default WARNING: no request lines; INFO logs one a request, as
`bench/api.py` runs caretime).

PostgreSQL: a database of its own is created (and dropped) on the server of
`CARETIME_BENCH_POSTGRES_URL` (default postgresql://postgres@127.0.0.1:5432/postgres).
Batches alternate between the endpoints; each batch's process CPU time per request (the
database server's CPU is not in it) is taken, and the median of each endpoint's batches is
printed, with the statements per request sent in one more batch that counts them at the
driver, whichever path sent them (`Statements`: SQLAlchemy's, a transaction's BEGIN and its
end, a statement `pg_direct` or `sqlite_driver` runs).
Run it with another checkout first on PYTHONPATH to compare two versions of caretime on the
same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).parent))

import _asgi
import bare_app
from _harness import scratch_database

CALLERS = 16
COUNTED = 160  # requests of the one batch per endpoint whose statements are counted


class Statements:
    """The statements sent while counting, seen at the driver on each pooled connection while
    it is checked out: on SQLite, sqlite3's trace callback (every statement the connection
    runs, `sqlite_driver`'s included); on PostgreSQL, asyncpg's query logger (what asyncpg
    sends by its connection's methods: a transaction's BEGIN and its end, a statement
    `pg_direct` runs) and SQLAlchemy's cursor executions (sent as asyncpg prepared
    statements, which that logger does not see). Only the counting batch is instrumented:
    the timed ones run without a listener."""

    def __init__(self, engines: list[Any]) -> None:
        self.engines = engines
        self.seen: list[str] = []  # appended to from SQLite's threads too

    @property
    def count(self) -> int:
        return len(self.seen)

    @contextlib.asynccontextmanager
    async def counting(self) -> AsyncIterator[None]:
        hooks = [(engine, *hook) for engine in self.engines for hook in self._hooks(engine)]
        for engine, name, hook in hooks:
            event.listen(engine, name, hook, insert=name == "checkout")  # before the ping
        try:
            yield
            await asyncio.sleep(0.01)  # the query logger's calls are scheduled, not made
        finally:
            for engine, name, hook in hooks:
                event.remove(engine, name, hook)

    def _hooks(self, engine: Any) -> list[tuple[str, Any]]:
        hooks = [("checkout", self._watch), ("checkin", self._unwatch)]
        if engine.dialect.name == "postgresql":  # sqlite3's trace sees SQLAlchemy's too
            hooks.append(("before_cursor_execute", self._note_prepared))
        return hooks

    def _note(self, statement: str) -> None:
        self.seen.append(statement)

    def _logged(self, record: Any) -> None:
        self._note(record.query)

    def _note_prepared(self, *cursor_execute: Any) -> None:
        if not cursor_execute[-1]:  # an executemany: asyncpg's logger sees it
            self._note(cursor_execute[2])

    def _watch(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        driver = record.driver_connection
        if hasattr(driver, "add_query_logger"):  # asyncpg's
            driver.add_query_logger(self._logged)
        else:  # aiosqlite's, over sqlite3's (opened off its thread: check_same_thread off)
            driver._conn.set_trace_callback(self._note)

    def _unwatch(self, _dbapi: Any, record: Any) -> None:
        driver = record.driver_connection
        if driver is None:  # invalidated
            return
        if hasattr(driver, "remove_query_logger"):
            driver.remove_query_logger(self._logged)
        elif driver._connection is not None:  # sqlite3's, None once closed
            driver._connection.set_trace_callback(None)


async def seed(app: Any, runtime: Any) -> tuple[str, str]:
    """A tenant, its key and one call: (key, call id)."""
    from caretime.db import transaction
    from caretime.tenancy import service as tenancy

    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.create_tenant(session, "bench", now=runtime.clock.now())
        _, key = await tenancy.create_key(session, tenant, now=runtime.clock.now())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        created = await client.post(
            "/calls",
            json={"name": "Pat Doe", "phone": "+12065550123"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert created.status_code == 201, created.text
    call_id: str = created.json()["id"]
    return key, call_id


def main(kind: str, batches: int, per_batch: int) -> None:
    from caretime.observability import configure_logging

    configure_logging(os.environ.get("CARETIME_BENCH_LOG_LEVEL", "WARNING"), as_json=True)
    with scratch_database(kind, "bench_auth") as url:
        asyncio.run(measure(kind, url, batches, per_batch))


async def measure(kind: str, url: str, batches: int, per_batch: int) -> None:
    from caretime.app import create_app
    from caretime.config import Settings

    app = create_app(Settings(database_url=url, workers=0))
    runtime = app.state.runtime
    twin = bare_app.make_app(url)
    async with app.router.lifespan_context(app), twin.router.lifespan_context(twin):
        key, call_id = await seed(app, runtime)
        engines = [runtime.engine.sync_engine, twin.state.engine.sync_engine]
        if runtime.read_engine.sync_engine.pool is not runtime.engine.sync_engine.pool:
            engines.append(runtime.read_engine.sync_engine)
        statements = Statements(engines)
        targets = {
            "GET /tenants/me": (app, _asgi.scope("GET", "/tenants/me", key=key)),
            "GET /calls/{id}": (app, _asgi.scope("GET", f"/calls/{call_id}", key=key)),
            "bare one SELECT": (
                twin,
                _asgi.scope("GET", f"/select/{call_id}", key=key),
            ),
        }
        for target, request in targets.values():
            await _asgi.cpu_per_request(target, request, per_batch, CALLERS)  # warm up
        spent: dict[str, list[float]] = {name: [] for name in targets}
        counted: dict[str, float] = {}
        for turn in range(batches):
            order = list(targets.items())
            order = order if turn % 2 == 0 else order[::-1]
            for name, (target, request) in order:
                spent[name].append(await _asgi.cpu_per_request(target, request, per_batch, CALLERS))
        for name, (target, request) in targets.items():
            async with statements.counting():
                before = statements.count
                await _asgi.cpu_per_request(target, request, COUNTED, CALLERS)
            counted[name] = (statements.count - before) / COUNTED
        for name in targets:
            print(
                f"{kind:8} {name:16} {statistics.median(spent[name]):8.1f} µs/request "
                f"(min {min(spent[name]):.1f}), {counted[name]:.2f} statements/request"
            )


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[2:4]]
    batches, per_batch = numbers + [15, 800][len(numbers) :]
    for kind in sys.argv[1:2] or ["sqlite", "postgres"]:  # `make bench`: both
        main(kind, batches, per_batch)
