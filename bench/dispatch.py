"""Dispatch benchmark on PostgreSQL: caretime's dispatcher against procrastinate.

    python bench/dispatch.py            (or `make bench`)

Prints, for each engine, no-op jobs/s draining 50,000 queued jobs with 1 and 2 worker
processes, and timer lateness (p50/p99) for jobs due at a steady 1,000/s, with ratios.
PostgreSQL comes from CARETIME_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/
postgres); the benchmark creates its own database and drops it at the end. procrastinate is
installed from PyPI into a throwaway virtualenv (CARETIME_BENCH_PEER_VENV, default
/tmp/caretime-bench-peer), never into the project.

Both engines get the same treatment: workers start first and idle, then jobs arrive in one
committed INSERT (which wakes both engines through LISTEN/NOTIFY); throughput runs from that
commit to the last job's completion as recorded in the database. Timer handlers report
`time.time() - due` over UDP to this process, the same code for both engines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

ADMIN_URL = os.environ.get(
    "CARETIME_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PEER_VENV = Path(os.environ.get("CARETIME_BENCH_PEER_VENV", "/tmp/caretime-bench-peer"))
PEER_REQUIREMENTS = ["procrastinate==3.10.0", "psycopg[binary]>=3.2", "psycopg-pool>=3.2"]
DRAIN_JOBS = int(os.environ.get("CARETIME_BENCH_DRAIN_JOBS", "50000"))
TIMER_RATE = 1000  # jobs due per second
TIMER_SECONDS = int(os.environ.get("CARETIME_BENCH_TIMER_SECONDS", "10"))
# The peer drains fewer jobs (its rate is what is compared) so that one run stays short.
PEER_DRAIN_JOBS = int(os.environ.get("CARETIME_BENCH_PEER_DRAIN_JOBS", "5000"))
PEER_TIMER_SECONDS = int(os.environ.get("CARETIME_BENCH_PEER_TIMER_SECONDS", "3"))
CARETIME_CONCURRENCY = 200
PEER_CONCURRENCY = 10
TIMEOUT = 600.0

PEER_WORKER = """
import asyncio, socket, struct, sys, time
from procrastinate import App, PsycopgConnector

url, mode, concurrency, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
app = App(connector=PsycopgConnector(conninfo=url, min_size=2, max_size=concurrency + 4))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

@app.task(name="bench.noop")
async def noop() -> None:
    pass

@app.task(name="bench.timer")
async def timer(due: float) -> None:
    udp.sendto(struct.pack("!d", time.time() - due), ("127.0.0.1", port))

async def main() -> None:
    async with app.open_async():
        if mode == "schema":
            await app.schema_manager.apply_schema_async()
            return
        await app.run_worker_async(concurrency=concurrency, name=f"bench-{port}")

asyncio.run(main())
"""


# -- worker side (runs in a subprocess) -------------------------------------------------


def run_caretime_worker(url: str, concurrency: int, port: int) -> None:
    from datetime import timedelta

    from caretime.config import Settings
    from caretime.dispatch import JobContext, job_handler
    from caretime.dispatch.pool import run_worker_process

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    @job_handler("bench.noop")
    async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
        pass

    @job_handler("bench.timer")
    async def timer(ctx: JobContext, payload: dict[str, Any]) -> None:
        udp.sendto(struct.pack("!d", time.time() - payload["due"]), ("127.0.0.1", port))

    settings = Settings(database_url=url, workers=0, log_level="WARNING")
    asyncio.run(run_worker_process(settings, concurrency=concurrency, lease=timedelta(seconds=60)))


# -- the two engines, seen from the benchmark -------------------------------------------


@dataclass
class Engine:
    name: str
    concurrency: int
    drain_jobs: int
    timer_seconds: int
    command: Callable[[str, int, int], list[str]]
    workers_query: str
    insert_due_now: Callable[[asyncpg.Connection, int], Awaitable[None]]
    insert_timers: Callable[[asyncpg.Connection, float, int], Awaitable[None]]
    remaining_query: str
    last_finished_query: str
    reset: str


async def _caretime_insert_due_now(connection: asyncpg.Connection, count: int) -> None:
    async with connection.transaction():
        await connection.execute(
            "INSERT INTO jobs (kind, payload, run_at, priority, status, attempts, max_attempts,"
            " created_at, updated_at) SELECT 'bench.noop', '{}', now(), 0, 'queued', 0, 5,"
            " now(), now() FROM generate_series(1, $1)",
            count,
        )
        await connection.execute("NOTIFY caretime_jobs")


_DUE = "$1::float8 + i / $2::float8"


async def _caretime_insert_timers(connection: asyncpg.Connection, start: float, count: int) -> None:
    await connection.execute(
        "INSERT INTO jobs (kind, payload, run_at, priority, status, attempts, max_attempts,"
        f" created_at, updated_at) SELECT 'bench.timer', jsonb_build_object('due', {_DUE}),"
        f" to_timestamp({_DUE}), 0, 'queued', 0, 5, now(), now()"
        " FROM generate_series(0, $3 - 1) AS i",
        start,
        float(TIMER_RATE),
        count,
    )


async def _peer_insert_due_now(connection: asyncpg.Connection, count: int) -> None:
    await connection.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " SELECT 'default', 'bench.noop', '{}' FROM generate_series(1, $1)",
        count,
    )


async def _peer_insert_timers(connection: asyncpg.Connection, start: float, count: int) -> None:
    await connection.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)"
        f" SELECT 'default', 'bench.timer', jsonb_build_object('due', {_DUE}),"
        f" to_timestamp({_DUE}) FROM generate_series(0, $3 - 1) AS i",
        start,
        float(TIMER_RATE),
        count,
    )


def _engines() -> list[Engine]:
    here = str(Path(__file__).resolve())
    return [
        Engine(
            name="caretime",
            concurrency=CARETIME_CONCURRENCY,
            drain_jobs=DRAIN_JOBS,
            timer_seconds=TIMER_SECONDS,
            command=lambda url, conc, port: [
                sys.executable,
                here,
                "caretime-worker",
                _sqlalchemy_url(url),
                str(conc),
                str(port),
            ],
            workers_query="SELECT count(*) FROM dispatch_workers",
            insert_due_now=_caretime_insert_due_now,
            insert_timers=_caretime_insert_timers,
            remaining_query="SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
            last_finished_query="SELECT extract(epoch FROM max(finished_at)) FROM jobs",
            reset="TRUNCATE jobs, dispatch_workers",
        ),
        Engine(
            name="procrastinate",
            concurrency=PEER_CONCURRENCY,
            drain_jobs=PEER_DRAIN_JOBS,
            timer_seconds=PEER_TIMER_SECONDS,
            command=lambda url, conc, port: _peer_command(url, "worker", conc, port),
            workers_query="SELECT count(*) FROM procrastinate_workers",
            insert_due_now=_peer_insert_due_now,
            insert_timers=_peer_insert_timers,
            remaining_query=(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            ),
            last_finished_query=(
                "SELECT extract(epoch FROM max(at)) FROM procrastinate_events"
                " WHERE type = 'succeeded'"
            ),
            reset=(
                "TRUNCATE procrastinate_events, procrastinate_periodic_defers,"
                " procrastinate_jobs, procrastinate_workers CASCADE"
            ),
        ),
    ]


# -- orchestration ----------------------------------------------------------------------


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def prepare_peer_venv() -> None:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing procrastinate into {PEER_VENV} (throwaway virtualenv)...")
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import procrastinate"], capture_output=True)
    if check.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True
        )
    (PEER_VENV / "bench_peer_worker.py").write_text(PEER_WORKER)


async def create_database(name: str) -> str:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(ADMIN_URL, name)
    from caretime import migrate
    from caretime.db import create_engine

    engine = create_engine(_sqlalchemy_url(url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    schema = await asyncio.create_subprocess_exec(*_peer_command(url, "schema", 1, 0))
    if await schema.wait() != 0:
        raise RuntimeError("could not install procrastinate's schema")
    return url


def _peer_command(url: str, mode: str, concurrency: int, port: int) -> list[str]:
    script = PEER_VENV / "bench_peer_worker.py"
    python = PEER_VENV / "bin" / "python"
    return [str(python), str(script), url, mode, str(concurrency), str(port)]


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Reports(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lateness: list[float] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.lateness.append(struct.unpack("!d", data)[0])


async def _poll(connection: asyncpg.Connection, query: str, until: Callable[[int], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not until(await connection.fetchval(query)):
        if time.monotonic() > deadline:
            raise TimeoutError(query)
        await asyncio.sleep(0.05)


async def _start_workers(
    engine: Engine, connection: asyncpg.Connection, url: str, count: int, port: int
) -> list[asyncio.subprocess.Process]:
    command = engine.command(url, engine.concurrency, port)
    workers = [await asyncio.create_subprocess_exec(*command) for _ in range(count)]
    await _poll(connection, engine.workers_query, lambda n: n >= count)
    return workers


async def _stop(workers: list[asyncio.subprocess.Process]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            await asyncio.wait_for(worker.wait(), timeout=30)
        except TimeoutError:
            worker.kill()
            await worker.wait()


async def drain(engine: Engine, url: str, processes: int) -> float:
    """Jobs/s for `processes` worker processes draining the engine's due no-op jobs."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(engine.reset)
        workers = await _start_workers(engine, connection, url, processes, 9)
        try:
            await engine.insert_due_now(connection, engine.drain_jobs)
            committed = time.time()
            await _poll(connection, engine.remaining_query, lambda n: n == 0)
            finished = await connection.fetchval(engine.last_finished_query)
        finally:
            await _stop(workers)
    finally:
        await connection.close()
    return engine.drain_jobs / (float(finished) - committed)


async def timers(engine: Engine, url: str) -> tuple[float, float, int]:
    """(p50, p99) lateness in ms, and how many reports arrived, for TIMER_RATE jobs/s."""
    loop = asyncio.get_running_loop()
    transport, reports = await loop.create_datagram_endpoint(Reports, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    connection = await asyncpg.connect(url)
    expected = TIMER_RATE * engine.timer_seconds
    try:
        await connection.execute(engine.reset)
        workers = await _start_workers(engine, connection, url, 1, port)
        try:
            await engine.insert_timers(connection, time.time() + 2.0, expected)
            await _poll(connection, engine.remaining_query, lambda n: n == 0)
            await asyncio.sleep(0.5)  # let the last datagrams land
        finally:
            await _stop(workers)
    finally:
        await connection.close()
        transport.close()
    quantiles = statistics.quantiles(reports.lateness, n=100)
    return quantiles[49] * 1000, quantiles[98] * 1000, len(reports.lateness) - expected


async def measure(engine: Engine, url: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    for processes in (1, 2):
        rate = await drain(engine, url, processes)
        figures[f"jobs/s, {processes} proc"] = rate
        print(f"{engine.name}: {engine.drain_jobs:,} jobs, {processes} process(es): ", end="")
        print(f"{rate:,.0f} jobs/s")
    p50, p99, missing = await timers(engine, url)
    figures["lateness p50 ms"], figures["lateness p99 ms"] = p50, p99
    print(f"{engine.name}: timer lateness p50 {p50:.1f} ms, p99 {p99:.1f} ms", end="")
    print(f" ({missing:+d} reports vs expected)")
    return figures


async def main() -> None:
    name = f"caretime_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    results: dict[str, dict[str, float]] = {}
    try:
        for engine in _engines():
            results[engine.name] = await measure(engine, url)
    finally:
        await drop_database(name)
    _print_table(results)


def _print_table(results: dict[str, dict[str, float]]) -> None:
    ours, peer = results["caretime"], results["procrastinate"]
    print()
    print(f"{'figure':<22}{'caretime':>12}{'procrastinate':>15}{'ratio':>9}{'target':>12}")
    targets = {
        "jobs/s, 1 proc": ">= 10,000",
        "jobs/s, 2 proc": ">= 10,000",
        "lateness p50 ms": "",
        "lateness p99 ms": "<= 50",
    }
    for figure, target in targets.items():
        higher_is_better = figure.startswith("jobs")
        ratio = ours[figure] / peer[figure] if higher_is_better else peer[figure] / ours[figure]
        print(f"{figure:<22}{ours[figure]:>12,.1f}{peer[figure]:>15,.1f}{ratio:>8.1f}x{target:>12}")
    print("(ratio: how many times better caretime is; for lateness, peer / caretime)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "caretime-worker":
        run_caretime_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        prepare_peer_venv()
        asyncio.run(main())
