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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
_SCRATCH = tempfile.mkdtemp(prefix="asgi-health-")
os.environ.setdefault("BARE_DATABASE_URL", f"sqlite+aiosqlite:///{_SCRATCH}/bare.db")

import _asgi  # noqa: E402
import bare_app  # noqa: E402
from caretime.app import create_app  # noqa: E402
from caretime.config import Settings  # noqa: E402
from caretime.observability import configure_logging  # noqa: E402

SCOPE = _asgi.scope("GET", "/health")


async def main(batches: int, per_batch: int) -> None:
    configure_logging("INFO", as_json=True)  # as `caretime serve` runs (probes are not logged)
    caretime = create_app(Settings(database_url=f"sqlite+aiosqlite:///{_SCRATCH}/caretime.db"))
    apps = {"caretime": caretime, "bare": bare_app.app}
    for app in apps.values():
        await _asgi.cpu_per_request(app, SCOPE, per_batch, callers=1)  # warm up
    spent: dict[str, list[float]] = {name: [] for name in apps}
    for turn in range(batches):
        order = list(apps.items()) if turn % 2 == 0 else list(reversed(apps.items()))
        for name, app in order:
            spent[name].append(await _asgi.cpu_per_request(app, SCOPE, per_batch, callers=1))
    medians = {name: statistics.median(values) for name, values in spent.items()}
    for name, values in spent.items():
        print(f"{name:9} {medians[name]:6.1f} µs/request (min {min(values):.1f})")
    print(f"ratio     {medians['bare'] / medians['caretime']:.2f}× (bare CPU / caretime CPU)")


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [31, 2000][len(arguments) :])))
