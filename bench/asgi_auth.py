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
driver, whichever path sent them (`tests.support.SentStatements`: SQLAlchemy's, a
transaction's BEGIN and its end, a statement `pg_direct` or `sqlite_driver` runs).
Run it with another checkout first on PYTHONPATH to compare two versions of caretime on the
same machine.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support

from tests.support import SentStatements, runtime_engines

import _asgi
import bare_app
from _harness import scratch_database

CALLERS = 16
COUNTED = 160  # requests of the one batch per endpoint whose statements are counted


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
        # Seen at the driver, on every pooled connection (tests.support.SentStatements); only
        # the counting batch is instrumented, the timed ones run without a listener.
        engines = [*runtime_engines(runtime), twin.state.engine.sync_engine]
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
            sent = SentStatements(engines)
            sent.listen()
            try:
                await _asgi.cpu_per_request(target, request, COUNTED, CALLERS)
                await asyncio.sleep(0.01)  # the query logger's calls are scheduled, not made
            finally:
                sent.remove()
            counted[name] = len(sent.seen) / COUNTED
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
