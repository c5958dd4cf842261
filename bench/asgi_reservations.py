"""CPU and statements per `POST /reservations` in process: caretime's ASGI app called
directly (no server, no sockets) on a real database, each request a distinct free slot as in
bench/api.py, so the figure is the app's own cost and holds up on a loaded machine better
than a `wrk` ratio does.

    .venv/bin/python bench/asgi_reservations.py [sqlite|postgres] [batches] [per batch] [callers]

Without a database named, both are measured in turn.

PostgreSQL: a scratch database is created (and dropped) on the server of
`CARETIME_BENCH_POSTGRES_URL` (default postgresql://postgres@127.0.0.1:5432/postgres).
Prints the median process CPU per request over the batches (on SQLite that includes
SQLite's own work, which runs in the process; on PostgreSQL the server's is not in it), the
statements each request sent (those run on the driver itself too), and one request's
statements. To compare with another
checkout, run this file with `PYTHONPATH=<that checkout>/src`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, text

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _asgi
import bare_app
from _harness import scratch_database
from caretime.app import create_app
from caretime.config import Settings
from caretime.runtime import Runtime

KEY = "ct_bench_asgi_key_0123456789"
PROVIDERS = 50
DAYS = 30  # 50 providers x 96 slots x 30 days: 144,000 distinct slots


class Slots:
    """Distinct free slots, one per request, spread over the providers as bench/api.py's."""

    def __init__(self, first: datetime, prefix: str) -> None:
        self.first = first
        self.prefix = prefix
        self.n = 0

    def body(self) -> bytes:
        n = self.n
        self.n += 1
        start = self.first + timedelta(minutes=15 * (n // PROVIDERS))
        slot = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f'{{"provider_id": "{self.prefix}{n % PROVIDERS}", "slot_start": "{slot}", '
            f'"client_id": "patient-{n}"}}'
        ).encode()


async def _batch(app: Any, path: str, slots: Slots, count: int, callers: int) -> float:
    """CPU µs per request for `count` reservations of distinct slots from `callers` at once."""
    bodies = [slots.body() for _ in range(count)]

    async def caller() -> None:
        while bodies:
            body = bodies.pop()
            status, answer = await _asgi.call(
                app, _asgi.scope("POST", path, key=KEY, body=body), body
            )
            if status != 201:
                raise RuntimeError(f"{status}: {answer[:300]!r}")

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return (time.process_time() - started) / count * 1e6


async def _seed(app: Any, first: datetime) -> None:
    transport = httpx.ASGITransport(app=app)
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://b", headers=auth) as http:
        for n in range(PROVIDERS):
            made = await http.post("/providers", json={"id": f"res-{n}", "name": "R", "tz": "UTC"})
            assert made.status_code == 201, made.text
            days = [
                {"date": (first + timedelta(days=d)).date().isoformat(),
                 "start": "00:00", "end": "23:45"}
                for d in range(DAYS)
            ]  # fmt: skip
            added = await http.post(f"/providers/res-{n}/availability", json=days)
            assert added.status_code == 200, added.text


def _counting(runtime: Runtime, statements: list[str]) -> None:
    """Every statement a request sends: SQLAlchemy's (a cursor-execute listener), and those
    run on the driver itself, which SQLAlchemy does not see: the SQLite hold's one hop
    (sqlite_hold) and the PostgreSQL hold's one statement (pg_direct)."""
    engines = [runtime.engine.sync_engine]
    if runtime.read_engine.sync_engine.pool is not runtime.engine.sync_engine.pool:
        engines.append(runtime.read_engine.sync_engine)  # else it shares engine's listeners
    for engine in engines:

        @event.listens_for(engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            _note(statements, statement)

        @event.listens_for(engine, "commit")
        def commit(conn: Any) -> None:
            statements.append("COMMIT")

    _count_on_the_driver(statements)


def _note(statements: list[str], statement: str) -> None:
    statements.append(" ".join(statement.split())[:110])


def _count_on_the_driver(statements: list[str]) -> None:
    import importlib

    try:
        sqlite_hold = importlib.import_module("caretime.booking.sqlite_hold")
    except ImportError:  # a version of the code without it
        sqlite_hold = None
    if sqlite_hold is not None:
        run = sqlite_hold._run

        def traced(connection: Any, *args: Any) -> Any:  # on the connection's thread
            seen: list[str] = []

            def trace(statement: str) -> None:
                # a trigger's run is traced again with its statement's text: count it once
                if not seen or seen[-1] != statement:
                    _note(statements, statement)
                seen.append(statement)

            connection.set_trace_callback(trace)
            try:
                return run(connection, *args)
            finally:
                connection.set_trace_callback(None)

        sqlite_hold._run = _timed_on_thread(traced)
    try:
        pg_direct = importlib.import_module("caretime.pg_direct")
    except ImportError:
        return
    fetch_one = pg_direct.fetch_one

    async def noted(engine: Any, statement: Any, params: Any) -> Any:
        _note(statements, pg_direct.prepared(statement, engine.dialect).sql)
        return await fetch_one(engine, statement, params)

    pg_direct.fetch_one = noted


# The SQLite writer thread's CPU in the holds' hops, and the holds they wrote: one a hop on
# a version of the code without group commit (sqlite_hold._run given one hold's statements).
WRITER = {"cpu": 0.0, "hops": 0, "holds": 0}


def _timed_on_thread(run: Any) -> Any:
    def timed(connection: Any, *args: Any) -> Any:
        started = time.thread_time()
        try:
            return run(connection, *args)
        finally:
            WRITER["cpu"] += time.thread_time() - started
            WRITER["hops"] += 1
            WRITER["holds"] += len(args[0]) if len(args) == 1 else 1

    return timed


# CARETIME_BENCH_STAGES=1: the process CPU spent inside each of these, per request (run with
# one caller, so nothing else runs meanwhile); the rest is the framework's and the edge's.
STAGES = {
    "key check": ("caretime.tenancy.auth", "check_key"),
    "the read": ("caretime.booking.placing", "read_for_request"),
    "the read (main)": ("caretime.booking.holding", "read_place"),
    "all of it (route)": ("caretime.booking.reserving", "reserve_requested"),
    "known place: checks + write": ("caretime.booking.reserving", "_write_known"),
    "  its write": ("caretime.booking.holding", "write_known"),
    "checks + write": ("caretime.booking.reserving", "attempt"),
    "checks + write (main)": ("caretime.booking.reservations", "attempt"),
    "  the write": ("caretime.booking.holding", "write_alone"),
    "  the write (main)": ("caretime.booking.holding", "write_hold"),
    "finish (transaction)": ("caretime.booking.reserving", "finish"),
    "finish (main)": ("caretime.booking.reservations", "finish"),
    "reserve (all of it)": ("caretime.booking.reservations", "reserve"),
    "answer (orjson)": ("caretime.booking.router", "render_json"),
    "answer (model)": ("caretime.booking.router", "render"),
}


def _timed_stages() -> dict[str, list[float]]:
    import importlib
    import inspect

    spent: dict[str, list[float]] = {}
    for stage, (module_name, name) in STAGES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a stage of another version of the code
            continue
        original = getattr(module, name, None)
        if original is None:
            continue
        spent[stage] = []
        if inspect.iscoroutinefunction(original):

            async def timed(*a: Any, _f: Any = original, _s: str = stage, **k: Any) -> Any:
                started = time.process_time()
                try:
                    return await _f(*a, **k)
                finally:
                    spent[_s].append(time.process_time() - started)
        else:

            def timed(*a: Any, _f: Any = original, _s: str = stage, **k: Any) -> Any:  # type: ignore[misc]
                started = time.process_time()
                try:
                    return _f(*a, **k)
                finally:
                    spent[_s].append(time.process_time() - started)

        setattr(module, name, timed)
    return spent


async def _measure(url: str, batches: int, per_batch: int, callers: int) -> None:
    settings = Settings(database_url=url, api_key=KEY, workers=0)
    runtime = Runtime.build(settings)
    app = create_app(runtime=runtime)
    first = datetime.combine(
        (datetime.now(UTC) + timedelta(days=3)).date(), datetime.min.time(), tzinfo=UTC
    )
    ours, twins = Slots(first, "res-"), Slots(first, "bare-")
    twin = bare_app.make_app(url)
    runs = {"caretime": (app, "/reservations", ours), "twin": (twin, "/insert", twins)}
    if os.environ.get("CARETIME_BENCH_ONLY"):  # e.g. "caretime", to profile one side
        runs = {os.environ["CARETIME_BENCH_ONLY"]: runs[os.environ["CARETIME_BENCH_ONLY"]]}
    spent: dict[str, list[float]] = {name: [] for name in runs}
    async with app.router.lifespan_context(app), twin.router.lifespan_context(twin):
        await _seed(app, first)
        for target, path, slots in runs.values():
            await _batch(target, path, slots, per_batch, callers)  # warm up: pools, caches
        stages = _timed_stages() if os.environ.get("CARETIME_BENCH_STAGES") else {}
        statements: list[str] = []
        _counting(runtime, statements)
        await _batch(app, "/reservations", ours, 1, 1)
        one = list(statements)
        statements.clear()
        for turn in range(batches):
            order = list(runs.items())[:: 1 if turn % 2 == 0 else -1]
            for name, (target, path, slots) in order:
                spent[name].append(await _batch(target, path, slots, per_batch, callers))
        per_request = len(statements) / (batches * per_batch)
    held, doubled = await _double_bookings(runtime)
    await runtime.close()
    for stage, times in stages.items():
        if times:
            print(f"  {stage:28} {sum(times) / len(times) * 1e6:6.0f} µs CPU x {len(times)}")
    medians = {name: statistics.median(values) for name, values in spent.items()}
    for name, values in spent.items():
        print(f"{name:9} CPU per request: median {medians[name]:.0f} µs "
              f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip
    if len(medians) == 2:
        print(f"ratio (twin / caretime CPU): {medians['twin'] / medians['caretime']:.2f}")
    print(f"double bookings: {doubled} of {held} active appointments")
    if WRITER["holds"]:
        print(f"SQLite writer thread CPU per hold: {WRITER['cpu'] / WRITER['holds'] * 1e6:.0f} µs"
              f" ({WRITER['holds'] / WRITER['hops']:.1f} holds a hop)")  # fmt: skip
    print(f"caretime statements + commits per request: {per_request:.2f}; one request:")
    for statement in one:
        print("   ", statement)


async def _double_bookings(runtime: Runtime) -> tuple[int, int]:
    """Active appointments, and the slots held by more than one of them (every request
    here is a 15-minute visit, so an overlap is a shared start)."""
    active = "status IN ('held', 'confirmed')"
    doubled = text(
        f"SELECT count(*) FROM (SELECT 1 FROM appointments WHERE {active}"
        " GROUP BY tenant_id, provider_id, slot_start HAVING count(*) > 1) AS doubled"
    )
    async with runtime.engine.connect() as connection:
        held = await connection.scalar(text(f"SELECT count(*) FROM appointments WHERE {active}"))
        return held or 0, await connection.scalar(doubled) or 0


def main() -> None:
    numbers = [int(a) for a in sys.argv[2:5]]
    batches, per_batch, callers = numbers + [9, 200, 16][len(numbers) :]
    for kind in sys.argv[1:2] or ["sqlite", "postgres"]:  # `make bench`: both
        print(f"== {kind}")
        with scratch_database(kind, "caretime_asgi_reservations") as url:
            asyncio.run(_measure(url, batches, per_batch, callers))


if __name__ == "__main__":
    main()
