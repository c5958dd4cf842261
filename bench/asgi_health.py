"""CPU per `GET /health` in process: caretime's ASGI app beside bench/bare_app.py's, called
directly (no server, no sockets), so the figure is the app's own cost — middleware, routing,
the endpoint — and holds up on a loaded machine better than a `wrk` ratio does.

    .venv/bin/python bench/asgi_health.py [batches] [requests per batch]

Batches alternate between the two apps; each batch's process CPU time per request is taken,
and the median of each app's batches is printed with their ratio (bare / caretime: the
share of the bare app's throughput caretime would reach if CPU were all that mattered).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
_SCRATCH = tempfile.mkdtemp(prefix="asgi-health-")
os.environ.setdefault("BARE_DATABASE_URL", f"sqlite+aiosqlite:///{_SCRATCH}/bare.db")

import bare_app  # noqa: E402
from caretime.app import create_app  # noqa: E402
from caretime.config import Settings  # noqa: E402
from caretime.observability import configure_logging  # noqa: E402

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/health",
    "raw_path": b"/health",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _batch(app: Any, count: int) -> float:
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for _ in range(count):
        await app(dict(SCOPE, state={}), _receive, send)
    spent = time.process_time() - started
    assert statuses == [200] * count, statuses[:3]
    return spent / count * 1e6


async def main(batches: int, per_batch: int) -> None:
    configure_logging("INFO", as_json=True)  # as `caretime serve` runs (probes are not logged)
    caretime = create_app(Settings(database_url=f"sqlite+aiosqlite:///{_SCRATCH}/caretime.db"))
    apps = {"caretime": caretime, "bare": bare_app.app}
    for app in apps.values():
        await _batch(app, per_batch)  # warm up
    spent: dict[str, list[float]] = {name: [] for name in apps}
    for turn in range(batches):
        order = list(apps.items()) if turn % 2 == 0 else list(reversed(apps.items()))
        for name, app in order:
            spent[name].append(await _batch(app, per_batch))
    medians = {name: statistics.median(values) for name, values in spent.items()}
    for name, values in spent.items():
        print(f"{name:9} {medians[name]:6.1f} µs/request (min {min(values):.1f})")
    print(f"ratio     {medians['bare'] / medians['caretime']:.2f}× (bare CPU / caretime CPU)")


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [31, 2000][len(arguments) :])))
