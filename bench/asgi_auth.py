"""CPU and statements per authenticated request in process: `GET /tenants/me` and `GET
/calls/{id}` called on caretime's ASGI app directly (no server, no sockets), beside
bench/bare_app.py's one-SELECT twin on the same database, 16 callers at once.

    .venv/bin/python bench/asgi_auth.py sqlite|postgres [batches] [requests per batch]

PostgreSQL: a database of its own is created (and dropped) on the server of
`CARETIME_BENCH_POSTGRES_URL` (default postgresql://postgres@127.0.0.1:5432/postgres).
Batches alternate between the endpoints; each batch's process CPU time per request (the
database server's CPU is not in it) and statements per request (a cursor-execute listener)
are taken, and the median of each endpoint's batches is printed. Run it with another
checkout first on PYTHONPATH to compare two versions of caretime on the same machine.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))

CALLERS = 16
ADMIN_URL = os.environ.get(
    "CARETIME_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A fresh database's URL; PostgreSQL's is migrated here (SQLite migrates on start)."""
    from caretime import migrate
    from caretime.db import create_engine

    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='asgi-auth-')}/caretime.db"
        return
    admin = make_url(ADMIN_URL).set(drivername="postgresql+asyncpg")
    name = f"bench_auth_{uuid.uuid4().hex[:8]}"
    url = admin.set(database=name).render_as_string(hide_password=False)
    server = create_engine(
        admin.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    async with server.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        async with server.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await server.dispose()


def scope(path: str, key: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"wrk"),
            (b"accept", b"*/*"),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def batch(app: Any, request: dict[str, Any], count: int) -> float:
    """CPU µs per request for `count` requests from CALLERS callers at once."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def caller(requests: int) -> None:
        for _ in range(requests):
            await app(dict(request, state={}), _receive, send)

    started = time.process_time()
    await asyncio.gather(*(caller(count // CALLERS) for _ in range(CALLERS)))
    spent = time.process_time() - started
    assert statuses == [200] * len(statuses), sorted(set(statuses))
    return spent / len(statuses) * 1e6


class Statements:
    def __init__(self, engines: list[Any]) -> None:
        self.count = 0
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._note)

    def _note(self, *_: Any) -> None:
        self.count += 1


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


async def main(kind: str, batches: int, per_batch: int) -> None:
    from caretime.app import create_app
    from caretime.config import Settings
    from caretime.observability import configure_logging

    configure_logging("WARNING", as_json=True)
    async with database(kind) as url:
        os.environ["BARE_DATABASE_URL"] = url
        import bare_app

        app = create_app(Settings(database_url=url, workers=0))
        runtime = app.state.runtime
        async with app.router.lifespan_context(app), bare_app.lifespan(bare_app.app):
            key, call_id = await seed(app, runtime)
            engines = [runtime.engine.sync_engine, bare_app.engine.sync_engine]
            if runtime.read_engine.sync_engine.pool is not runtime.engine.sync_engine.pool:
                engines.append(runtime.read_engine.sync_engine)
            statements = Statements(engines)
            targets = {
                "GET /tenants/me": (app, scope("/tenants/me", key)),
                "GET /calls/{id}": (app, scope(f"/calls/{call_id}", key)),
                "bare one SELECT": (bare_app.app, scope(f"/select/{call_id}", key)),
            }
            for target, request in targets.values():
                await batch(target, request, per_batch)  # warm up
            spent: dict[str, list[float]] = {name: [] for name in targets}
            counted: dict[str, list[float]] = {name: [] for name in targets}
            for turn in range(batches):
                order = list(targets.items())
                order = order if turn % 2 == 0 else order[::-1]
                for name, (target, request) in order:
                    before = statements.count
                    spent[name].append(await batch(target, request, per_batch))
                    counted[name].append((statements.count - before) / per_batch)
            for name in targets:
                print(
                    f"{kind:8} {name:16} {statistics.median(spent[name]):8.1f} µs/request "
                    f"(min {min(spent[name]):.1f}), {statistics.median(counted[name]):.2f} "
                    "statements/request"
                )


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[2:4]]
    batches, per_batch = numbers + [15, 800][len(numbers) :]
    asyncio.run(main(sys.argv[1], batches, per_batch))
