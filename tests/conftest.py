"""Fixtures: an app and client bound to a fresh database, on SQLite and on PostgreSQL.

PostgreSQL comes from CARETIME_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/postgres).
Each test run creates its own database there, migrates it once, and empties it between tests.
When the variable is set, an unreachable server fails the run; when unset, those tests skip.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from caretime import migrate
from caretime.app import create_app
from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.db import Base, create_engine
from caretime.dispatch.worker import Dispatcher
from caretime.models import import_all_models
from caretime.runtime import Runtime
from tests.support import TEST_API_KEY

POSTGRES_ENV = "CARETIME_TEST_POSTGRES_URL"
# A Monday afternoon in New York; tests that need another moment set the clock themselves.
DEFAULT_NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def run_blocking(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run set-up work on its own loop in its own thread (session fixtures may be first
    requested from inside a test's running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


@dataclass
class Database:
    kind: str
    url: str


def _asyncpg_url(raw: str) -> str:
    url = make_url(raw)
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _create_postgres_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
            # A throwaway test database need not survive a crash of the server, so commits
            # need not wait for the WAL to reach the disk: a test commits hundreds of times,
            # and on a busy disk each flush costs milliseconds. Visibility, locking and
            # isolation are unchanged, so every race test still races as it would in production.
            await connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    finally:
        await engine.dispose()


async def _drop_postgres_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    raw = os.environ.get(POSTGRES_ENV)
    if not raw:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1/postgres)"
        )
    admin_url = _asyncpg_url(raw)
    name = f"caretime_test_{uuid.uuid4().hex[:10]}"
    try:
        run_blocking(_create_postgres_database(admin_url, name))
    except Exception as exc:  # set but unreachable is a failure, never a skip
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc!r}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    run_blocking(_migrate(url))
    yield url
    run_blocking(_drop_postgres_database(admin_url, name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    run_blocking(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@functools.cache
def _empty_tables_sql() -> str:
    """One script that empties every table and restarts every sequence, as a fresh database.

    DELETE, not TRUNCATE: TRUNCATE gives each of the ~35 tables (and its indexes) a new file
    and drops the old one at commit, a fixed cost of 0.3-1 s per test that dwarfed most tests;
    DELETE of tables that are empty or hold a few rows costs milliseconds. Children go first,
    so no foreign key is ever violated."""
    import_all_models()
    deletes = [f'DELETE FROM "{table.name}";' for table in reversed(Base.metadata.sorted_tables)]
    restart_sequences = (
        "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)"
        " FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL;"
    )
    return "\n".join(["BEGIN;", *deletes, restart_sequences, "COMMIT;"])


async def _empty_all_tables(url: str) -> None:
    # asyncpg directly: a SQLAlchemy engine per test would add its dialect set-up queries.
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        await connection.execute(_empty_tables_sql())  # several statements: simple protocol
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        await _empty_all_tables(url)
        return Database("postgres", url)
    if request.node.get_closest_marker("postgres_only"):
        pytest.skip("PostgreSQL-only test")
    path = tmp_path / "caretime.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return Database("sqlite", f"sqlite+aiosqlite:///{path}")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DEFAULT_NOW)


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0)


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, clock)
    yield runtime
    await runtime.close()


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[FastAPI]:
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def anon_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://caretime.test") as client:
        yield client


@pytest.fixture
async def client(anon_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client authenticated as the default tenant."""
    anon_client.headers["Authorization"] = f"Bearer {TEST_API_KEY}"
    return anon_client


@pytest.fixture
def dispatcher(runtime: Runtime) -> Dispatcher:
    """Runs due jobs on demand: `await dispatcher.run_pending()` after moving the clock."""
    return Dispatcher(runtime)


@dataclass
class LiveServer:
    url: str
    runtime: Runtime


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The app served by uvicorn on a free localhost port, in its own thread and event loop,
    on the system clock: for tests that need real HTTP and real concurrency."""
    server_runtime = Runtime.build(settings)
    app = create_app(runtime=server_runtime)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A long keep-alive: on a starved machine the server's 5-s idle timer can fire before it
    # reads a request already sent on that connection, and the client sees a ReadError that
    # says nothing about the product (two race tests failed so under a load of 8).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, timeout_keep_alive=60
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", server_runtime)
    server.should_exit = True
    thread.join(timeout=20)
