"""CPU and statements per `GET /slots` in process: caretime's ASGI app called directly (no
server, no sockets) on a real database, beside bench/bare_app.py's one-SELECT twin, so the
figure is the app's own cost and holds up on a loaded machine better than a `wrk` ratio.

    .venv/bin/python bench/asgi_slots.py sqlite|postgresql [batches] [requests per batch]

Searches (the data shape of bench/api.py and bench/booking.py, providers in UTC):

- `day`: one provider-day as bench/api.py asks for it (08:00-17:00 open, nothing booked);
- `month`: one provider × 31 days, 08:00-17:00 each day with three visits (15, 30 and 45
  minutes at 09:00, 11:00, 14:00), `limit=1000`, as bench/booking.py asks;
- `dense`: one day of a provider open round the clock with every other quarter hour held
  (the day before and after too);
- `me`: `GET /tenants/me`, the same key check and policy with no search: what any
  authenticated read costs before its own work;
- `twin`: bench/bare_app.py's `GET /select/{id}` on the same database.

On PostgreSQL the tenant also holds BENCH_VISITS (5,000) visits of another provider over
the following weeks, written by SQL and ANALYZEd, as bench/api.py's reservations leave it:
PostgreSQL's planner decides by such statistics whether to plan a statement again on each
execution.

Batches alternate between the searches; each batch's process CPU time per request is taken
(16 callers at once), and on PostgreSQL also its server's (the database's backends, from
/proc), which a `wrk` run pays on the same cores; the median (min) of each search's batches
is printed with the statements one request runs (counted with a cursor-execute listener,
and where asyncpg or sqlite3 run them themselves). BENCH_SEARCHES=day,twin runs only those;
BENCH_PROFILE=day runs cProfile over one batch instead. To compare two versions of the code,
run this file from each checkout in turns (PYTHONPATH=<its src>).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).parent))
import _asgi
import bare_app
from _harness import scratch_database

KEY = "ct_bench_slots_key_0123456789abcdef0123456789"
VISITS = int(os.environ.get("BENCH_VISITS", "5000"))
CALLERS = 16
FIRST_DAY = (datetime.now(UTC) + timedelta(days=3)).date()


def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


async def _seed(http: httpx.AsyncClient) -> str:
    """The providers and visits searched; returns the id of the call the twin reads."""
    call = _ok(await http.post("/calls", json={"name": "Bench", "phone": "+12065550100"}))
    _ok(await http.post("/providers", json={"id": "slots-1", "name": "Day", "tz": "UTC"}))
    window = {"date": FIRST_DAY.isoformat(), "start": "08:00", "end": "17:00"}
    _ok(await http.post("/providers/slots-1/availability", json=window))
    _ok(await http.post("/providers", json={"id": "month", "name": "Month", "tz": "UTC"}))
    days = [FIRST_DAY + timedelta(days=d) for d in range(31)]
    windows = [{"date": d.isoformat(), "start": "08:00", "end": "17:00"} for d in days]
    _ok(await http.post("/providers/month/availability", json=windows))
    for n, day in enumerate(days):
        for hour in (9, 11, 14):
            start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)
            body = {"provider_id": "month", "slot_start": start.isoformat(), "client_id": f"p{n}"}
            _ok(await http.post("/reservations", json=body))
    await _seed_dense(http)
    _ok(await http.post("/providers", json={"id": "others", "name": "Others", "tz": "UTC"}))
    return str(call["id"])


async def _seed_other_visits(url: str) -> None:
    """PostgreSQL: VISITS confirmed visits of another provider, a quarter hour each from the
    searched day on, and fresh statistics."""
    import asyncpg

    connection = await asyncpg.connect(_dsn(url))
    try:
        tenant_id = await connection.fetchval("SELECT tenant_id FROM providers LIMIT 1")
        first = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
        await connection.execute(
            "INSERT INTO appointments (tenant_id, id, provider_id, client_id, slot_start, "
            "slot_end, occupied_start, occupied_end, status, hold_expires_at, created_at, "
            "updated_at) SELECT $1, 'other-' || n, 'others', 'c', at, at + interval '15 min', "
            "at, at + interval '15 min', 'confirmed', at, at, at FROM (SELECT n, $2::timestamptz"
            " + n * interval '15 min' AS at FROM generate_series(1, $3::int) AS n) AS visits",
            tenant_id,
            first,
            VISITS,
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class _ServerCpu:
    """The CPU time of a PostgreSQL database's backends (those serving `url` but this one),
    read from /proc: what the server spent on the requests of a batch."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def seconds(self) -> dict[int, float]:
        pids = await self.connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {row[0]: _process_seconds(row[0]) for row in pids}

    async def spent_since(self, before: dict[int, float]) -> float:
        after = await self.seconds()
        return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _process_seconds(pid: int) -> float:
    """A process's CPU time: /proc's schedstat counts it in nanoseconds (stat in ticks of
    10 ms, too coarse for a batch's share of one backend)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:  # gone since it was listed
        return 0.0


async def _seed_dense(http: httpx.AsyncClient) -> None:
    """A provider open round the clock for three days, every other quarter hour held."""
    _ok(await http.post("/providers", json={"id": "dense", "name": "Dense", "tz": "UTC"}))
    days = [FIRST_DAY + timedelta(days=d) for d in range(3)]
    windows = [{"date": d.isoformat(), "start": "00:00", "end": "23:45"} for d in days]
    _ok(await http.post("/providers/dense/availability", json=windows))
    first = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
    for n in range(0, 3 * 95, 2):
        start = (first + timedelta(minutes=15 * n)).isoformat()
        body = {"provider_id": "dense", "slot_start": start, "client_id": f"d{n}"}
        _ok(await http.post("/reservations", json=body))


def _searches(call_id: str) -> dict[str, str]:
    day, middle = FIRST_DAY.isoformat(), (FIRST_DAY + timedelta(days=1)).isoformat()
    start = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
    end = start + timedelta(days=31)
    month = f"start={start.isoformat()}&end={end.isoformat()}&limit=1000"
    return {
        "day": f"/slots?provider_id=slots-1&start={day}T00:00:00Z&end={day}T23:59:59Z",
        "month": "/slots?provider_id=month&" + month.replace("+", "%2B"),
        "dense": f"/slots?provider_id=dense&start={middle}T00:00:00Z&end={middle}T23:59:59Z",
        "me": "/tenants/me",
        "twin": f"/select/{call_id}",
    }


@contextmanager
def _counting(engines: list[Any]) -> Iterator[list[str]]:
    statements: list[str] = []
    last: list[Any] = [None]

    def note(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        # An engine with other execution options shares its parent's listeners: once each.
        if last[0] != (cursor, statement):
            statements.append(statement)
        last[0] = (cursor, statement)

    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        with _counting_asyncpg(statements), _counting_sqlite3(statements):
            yield statements
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", note)


@contextmanager
def _counting_asyncpg(statements: list[str]) -> Iterator[None]:
    """Statements run by asyncpg itself (pg_direct), which no SQLAlchemy cursor sees."""
    import asyncpg

    originals = {name: getattr(asyncpg.Connection, name) for name in ("fetch", "fetchrow")}

    def counted(original: Any) -> Any:
        async def run(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            statements.append(query)
            return await original(self, query, *args, **kwargs)

        return run

    for name, original in originals.items():
        setattr(asyncpg.Connection, name, counted(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(asyncpg.Connection, name, original)


@contextmanager
def _counting_sqlite3(statements: list[str]) -> Iterator[None]:
    """Statements run by sqlite3 itself (sqlite_driver.fetch_all), which no SQLAlchemy cursor
    sees (none before slots3: main's code, when comparing)."""
    from caretime import sqlite_driver

    original = getattr(sqlite_driver, "_fetch_all", None)
    if original is None:
        yield
        return

    def counted(connection: Any, sql: str, values: Any) -> Any:
        statements.append(sql)
        return original(connection, sql, values)

    sqlite_driver._fetch_all = counted  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite_driver._fetch_all = original  # type: ignore[assignment]


def main(kind: str, batches: int, per_batch: int) -> None:
    with scratch_database(kind, "asgi_slots") as url:
        asyncio.run(_run(url, batches, per_batch))


async def _run(url: str, batches: int, per_batch: int) -> None:
    from caretime.app import create_app
    from caretime.config import Settings
    from caretime.observability import configure_logging

    configure_logging("WARNING", as_json=True)
    app = create_app(Settings(database_url=url, api_key=KEY, workers=0))
    twin = bare_app.make_app(url)
    async with app.router.lifespan_context(app), twin.router.lifespan_context(twin):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as http:
            searches = _searches(await _seed(http))
        chosen = os.environ.get("BENCH_SEARCHES")
        if chosen:
            searches = {name: searches[name] for name in chosen.split(",")}
        server = None
        if not url.startswith("sqlite"):
            import asyncpg

            await _seed_other_visits(url)
            server = _ServerCpu(await asyncpg.connect(_dsn(url)))
        try:
            await _measure(app, twin, searches, batches, per_batch, server)
        finally:
            if server is not None:
                await server.connection.close()


async def _measure(
    app: Any,
    bare: Any,
    searches: dict[str, str],
    batches: int,
    per_batch: int,
    server: _ServerCpu | None,
) -> None:
    runtime = app.state.runtime
    engines = list({id(e): e for e in (runtime.engine, runtime.read_engine)}.values())
    scopes = {
        name: _asgi.scope("GET", target, key=None if name == "twin" else KEY)
        for name, target in searches.items()
    }
    apps = {name: bare if name == "twin" else app for name in searches}
    counts = {}
    for name, scope in scopes.items():
        await _asgi.cpu_per_request(apps[name], scope, max(CALLERS, per_batch // 4), CALLERS)
        with _counting(engines) as statements:
            status, body = await _asgi.call(apps[name], scope)
        counts[name] = len(statements) if name != "twin" else 1
        print(f"# {name}: {status}, {len(body)} bytes, {counts[name]} statements")
        if os.environ.get("BENCH_SHOW_STATEMENTS"):
            print("\n".join(f"#   {' '.join(s.split())[:160]}" for s in statements))
    profiled = os.environ.get("BENCH_PROFILE")
    if profiled:
        await _profile(app, scopes[profiled], per_batch)
        return
    spent: dict[str, list[float]] = {name: [] for name in scopes}
    served: dict[str, list[float]] = {name: [] for name in scopes}
    for turn in range(batches):
        order = list(scopes) if turn % 2 == 0 else list(reversed(scopes))
        for name in order:
            count = per_batch // 8 if name == "month" else per_batch
            before = await server.seconds() if server else {}
            spent[name].append(
                await _asgi.cpu_per_request(apps[name], scopes[name], count, CALLERS)
            )
            if server:
                served[name].append(await server.spent_since(before) / count * 1e6)
    for name, values in spent.items():
        on_server = ""
        if served[name]:
            on_server = f", server {statistics.median(served[name]):6.1f} µs/request"
        print(
            f"{name:6} {statistics.median(values):8.1f} µs/request "
            f"(min {min(values):.1f}){on_server}, {counts[name]} statements"
        )


async def _profile(app: Any, scope: dict[str, Any], count: int) -> None:
    """cProfile over `count` requests (BENCH_PROFILE=day|month): the top frames by own time
    and by cumulative time."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    await _asgi.cpu_per_request(app, scope, count, CALLERS)
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[2:4]]
    batches, per_batch = (numbers + [15, 320][len(numbers) :])[:2]
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite", batches, per_batch)
