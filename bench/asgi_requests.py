"""CPU per request in process: `GET /health` and authenticated reads, caretime's ASGI app
beside bench/bare_app.py's twins on the same database, called directly (no server, no
sockets), so the figure is the apps' own cost (middleware, routing, dependencies, the
endpoint, the database driver on our side) and holds up on a loaded machine better than a
`wrk` ratio does. bench/asgi_health.py is the `/health`-only, SQLite-only short form.

    .venv/bin/python bench/asgi_requests.py [batches] [requests per batch]

| caretime | bare twin |
|---|---|
| `GET /health` | `GET /health` |
| `GET /tenants/me` (API key) | `GET /select/{id}` (one indexed SELECT) |
| `GET /calls/{id}` (API key) | `GET /select/{id}` |

Batches alternate between the two apps (the twin first in even turns, caretime first in odd
ones); each batch runs `CARETIME_BENCH_CONCURRENCY` callers at once (default 16) and its
process CPU time per request is taken (threads included: aiosqlite's; the PostgreSQL
server's CPU is not). Printed: each app's median (min) and the ratio bare / caretime, the
share of the twin's throughput caretime would reach if the process's CPU were all that
mattered. Variables: `CARETIME_BENCH_DATABASES` (`sqlite,postgresql`),
`CARETIME_BENCH_ENDPOINTS` (parts of names, e.g. `health,calls`), `CARETIME_BENCH_POSTGRES_URL`.

To compare two versions of caretime, run it once per version with `PYTHONPATH=<their src>`,
in turns (the bare twin is this file's, the same in every run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import _asgi
import bare_app
from _harness import scratch_database
from caretime.app import create_app
from caretime.config import Settings
from caretime.observability import configure_logging

KEY = "ct_bench_asgi_key_0123456789"
CONCURRENCY = int(os.environ.get("CARETIME_BENCH_CONCURRENCY", "16"))
DATABASES = os.environ.get("CARETIME_BENCH_DATABASES", "sqlite,postgresql").split(",")
ENDPOINTS = [part for part in os.environ.get("CARETIME_BENCH_ENDPOINTS", "").split(",") if part]


@dataclass(frozen=True)
class Pair:
    name: str
    ours: tuple[str, bool]  # path, with the API key
    twin: str


def pairs(call_id: str) -> list[Pair]:
    chosen = [
        Pair("GET /health", ("/health", False), "/health"),
        Pair("GET /tenants/me", ("/tenants/me", True), f"/select/{call_id}"),
        Pair("GET /calls/{id}", (f"/calls/{call_id}", True), f"/select/{call_id}"),
    ]
    return [p for p in chosen if not ENDPOINTS or any(part in p.name for part in ENDPOINTS)]


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


async def seeded_call(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        response = await c.post("/calls", json={"name": "Bench Patient", "phone": "+12065550100"})
        response.raise_for_status()
        call_id: str = response.json()["id"]
    return call_id


async def measure(label: str, url: str, batches: int, per_batch: int) -> None:
    settings = Settings(database_url=url, api_key=KEY, workers=0, log_level="INFO")
    ours = create_app(settings)
    twin = bare_app.make_app(url)
    async with running(ours), running(twin):
        call_id = await seeded_call(ours)
        print(f"{label}, {CONCURRENCY} callers, {batches} × {per_batch} requests a side:")
        for pair in pairs(call_id):
            path, authenticated = pair.ours
            sides = {
                "caretime": (ours, _asgi.scope("GET", path, key=KEY if authenticated else None)),
                "bare": (twin, _asgi.scope("GET", pair.twin)),
            }
            print("  " + report(pair.name, await alternated(sides, batches, per_batch)))


async def alternated(
    sides: dict[str, tuple[Any, dict[str, Any]]], batches: int, per_batch: int
) -> dict[str, list[float]]:
    for app, request in sides.values():
        await _asgi.cpu_per_request(app, request, per_batch, CONCURRENCY)  # warm up
    spent: dict[str, list[float]] = {name: [] for name in sides}
    for turn in range(batches):
        order = list(sides) if turn % 2 else list(reversed(sides))
        for name in order:
            app, request = sides[name]
            spent[name].append(await _asgi.cpu_per_request(app, request, per_batch, CONCURRENCY))
    return spent


def report(name: str, spent: dict[str, list[float]]) -> str:
    ours, bare = (statistics.median(spent[side]) for side in ("caretime", "bare"))
    return (
        f"{name:18} caretime {ours:7.1f} µs (min {min(spent['caretime']):7.1f})  "
        f"bare {bare:7.1f} µs (min {min(spent['bare']):7.1f})  ratio {bare / ours:.2f}×"
    )


def main(batches: int, per_batch: int) -> None:
    configure_logging("INFO", as_json=True)  # as `caretime serve` runs
    started = time.strftime("%H:%M:%S", time.gmtime())
    print(f"{started} UTC, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for kind, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        if kind in DATABASES:
            with scratch_database(kind, "caretime_bench_asgi") as url:
                asyncio.run(measure(label, url, batches, per_batch))


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    main(*(arguments + [15, 800][len(arguments) :]))
