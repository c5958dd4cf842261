"""CPU and statements per `POST /reservations` in process: caretime's ASGI app called
directly (no server, no sockets) on a real database, each request a distinct free slot as in
bench/api.py, so the figure is the app's own cost and holds up on a loaded machine better
than a `wrk` ratio does.

    .venv/bin/python bench/asgi_reservations.py sqlite|postgres [batches] [per batch] [callers]

PostgreSQL comes from CARETIME_TEST_POSTGRES_URL (a scratch database is created and dropped).
Prints the median process CPU per request over the batches (on SQLite that includes
SQLite's own work, which runs in the process; on PostgreSQL the server's is not in it), the
statements each request sent, and one request's statements. To compare with another
checkout, run this file with `PYTHONPATH=<that checkout>/src`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from caretime import migrate
from caretime.app import create_app
from caretime.config import Settings
from caretime.runtime import Runtime

KEY = "ct_bench_asgi_key_0123456789"
PROVIDERS = 50
DAYS = 30  # 50 providers x 96 slots x 30 days: 144,000 distinct slots
HEADERS = [
    (b"host", b"caretime.bench"),
    (b"authorization", f"Bearer {KEY}".encode()),
    (b"content-type", b"application/json"),
]


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


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


async def _call(
    app: Any, path: str, body: bytes, statuses: list[int], answers: list[bytes]
) -> None:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif message.get("body"):
            answers.append(message["body"])

    await app(_scope(path, body), receive, send)


async def _batch(app: Any, path: str, slots: Slots, count: int, callers: int) -> float:
    statuses: list[int] = []
    answers: list[bytes] = []
    queue = [slots.body() for _ in range(count)]

    async def caller() -> None:
        while queue:
            await _call(app, path, queue.pop(), statuses, answers)

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    spent = time.process_time() - started
    if statuses != [201] * count:
        bad = [s for s in statuses if s != 201]
        raise RuntimeError(f"{len(bad)} answers not 201, e.g. {bad[0]}: {answers[:1]}")
    return spent / count * 1e6


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
    engines = [runtime.engine.sync_engine]
    if runtime.read_engine.sync_engine.pool is not runtime.engine.sync_engine.pool:
        engines.append(runtime.read_engine.sync_engine)  # else it shares engine's listeners
    for engine in engines:

        @event.listens_for(engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(" ".join(statement.split())[:110])

        @event.listens_for(engine, "commit")
        def commit(conn: Any) -> None:
            statements.append("COMMIT")


# CARETIME_BENCH_STAGES=1: the process CPU spent inside each of these, per request (run with
# one caller, so nothing else runs meanwhile); the rest is the framework's and the edge's.
STAGES = {
    "key check": ("caretime.tenancy.auth", "check_key"),
    "the read": ("caretime.booking.placing", "read_for_request"),
    "the read (main)": ("caretime.booking.holding", "read_place"),
    "checks + write": ("caretime.booking.reservations", "attempt"),
    "  the write": ("caretime.booking.holding", "write_alone"),
    "  the write (main)": ("caretime.booking.holding", "write_hold"),
    "finish (transaction)": ("caretime.booking.reservations", "finish"),
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
    os.environ["BARE_DATABASE_URL"] = url
    import bare_app

    settings = Settings(database_url=url, api_key=KEY, workers=0)
    runtime = Runtime.build(settings)
    app = create_app(runtime=runtime)
    first = datetime.combine(
        (datetime.now(UTC) + timedelta(days=3)).date(), datetime.min.time(), tzinfo=UTC
    )
    ours, twins = Slots(first, "res-"), Slots(first, "bare-")
    runs = {"caretime": (app, "/reservations", ours), "twin": (bare_app.app, "/insert", twins)}
    if os.environ.get("CARETIME_BENCH_ONLY"):  # e.g. "caretime", to profile one side
        runs = {os.environ["CARETIME_BENCH_ONLY"]: runs[os.environ["CARETIME_BENCH_ONLY"]]}
    spent: dict[str, list[float]] = {name: [] for name in runs}
    async with app.router.lifespan_context(app), bare_app.lifespan(bare_app.app):
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
    await runtime.close()
    for stage, times in stages.items():
        if times:
            print(f"  {stage:22} {sum(times) / len(times) * 1e6:6.0f} µs CPU x {len(times)}")
    medians = {name: statistics.median(values) for name, values in spent.items()}
    for name, values in spent.items():
        print(f"{name:9} CPU per request: median {medians[name]:.0f} µs "
              f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip
    if len(medians) == 2:
        print(f"ratio (twin / caretime CPU): {medians['twin'] / medians['caretime']:.2f}")
    print(f"caretime statements + commits per request: {per_request:.2f}; one request:")
    for statement in one:
        print("   ", statement)


async def _postgres(admin: str, run: Any) -> None:
    admin_url = make_url(admin).set(drivername="postgresql+asyncpg")
    name = f"caretime_asgi_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        migrating = create_async_engine(url)
        await migrate.upgrade(migrating)
        await migrating.dispose()
        await run(url)
    finally:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()


def main() -> None:
    kind = sys.argv[1]
    batches, per_batch, callers = (int(a) for a in (sys.argv[2:] + ["9", "200", "16"][
        len(sys.argv) - 2 :])[:3])  # fmt: skip

    async def run(url: str) -> None:
        await _measure(url, batches, per_batch, callers)

    if kind == "postgres":
        asyncio.run(_postgres(os.environ["CARETIME_TEST_POSTGRES_URL"], run))
    else:
        scratch = tempfile.mkdtemp(prefix="asgi-reservations-")
        asyncio.run(run(f"sqlite+aiosqlite:///{scratch}/caretime.db"))


if __name__ == "__main__":
    main()
