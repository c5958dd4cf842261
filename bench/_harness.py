"""Shared benchmark plumbing: a throwaway PostgreSQL database, a server in a subprocess, and
a closed-loop HTTP load generator that reports throughput and latency percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_URL = os.environ.get(
    "CARETIME_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


CARETIME = str(Path(sys.executable).parent / "caretime")


async def _admin(statement: str) -> None:
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """Create a fresh database for one benchmark run and drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(POSTGRES_URL)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def scratch_database(kind: str, prefix: str) -> Iterator[str]:
    """A fresh, migrated database for an in-process benchmark: a temporary SQLite file
    (`kind` "sqlite") or a PostgreSQL database of its own, dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as folder:
            yield f"sqlite+aiosqlite:///{folder}/caretime.db"  # migrated by the app's start
        return
    with postgres_database(prefix) as url:
        asyncio.run(_migrated(url))
        yield url


async def _migrated(url: str) -> None:
    from caretime import migrate

    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def caretime_server(env: dict[str, str], *, workers: int = 0) -> Iterator[str]:
    """`caretime serve` in a subprocess; yields its base URL once /health answers."""
    port = free_port()
    full_env = {
        **os.environ,
        "CARETIME_WORKERS": str(workers),
        "CARETIME_LOG_LEVEL": "WARNING",
        **env,
    }
    if not full_env.get("CARETIME_DATABASE_URL", "sqlite").startswith("sqlite"):
        subprocess.run([CARETIME, "migrate"], env=full_env, check=True, capture_output=True)
    process = subprocess.Popen(
        [CARETIME, "serve", "--port", str(port)],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_pid(url: str) -> int:
    """The PID of the process listening on the server's port (for the profiler)."""
    port = url.rsplit(":", 1)[1]
    found = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    marker = "pid="
    if marker not in found:
        return 0
    return int(found.split(marker, 1)[1].split(",", 1)[0])


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    # Start-up takes 1-2 s on a quiet machine and took 30-60 s with the load at 9 (shared).
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start within 180 s")


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def summary(self) -> str:
        return (
            f"{self.per_second:9.0f}/s  p50 {self.percentile(0.5):6.1f} ms  "
            f"p99 {self.percentile(0.99):6.1f} ms  statuses {dict(sorted(self.statuses.items()))}"
        )


async def closed_loop(
    clients: int,
    requests: int,
    send: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    *,
    base_url: str,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """`clients` concurrent clients issue `requests` in total, each waiting for its answer."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=60
    ) as http:

        async def client() -> None:
            for index in counter:
                started = time.perf_counter()
                response = await send(http, index)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return LoadResult(requests, elapsed, latencies, statuses)
