"""CPU and statements per `POST /messages/inbound` answering "no" to a shift offer, in
process: caretime's ASGI app called directly (no server, no sockets) on a real database,
the same request bench/api.py sends (one caregiver's "no" with a `shift_id` hint, 16
callers at once), against bench/bare_app.py's twin (`POST /update`, one conditional UPDATE)
in alternated batches.

    .venv/bin/python bench/asgi_inbound.py [sqlite|postgres] [batches] [per batch] [callers]

Without a database named, both are measured in turn. Prints the median process CPU per
request over the batches for both, the statements (and commits) a request sent, and one
batch's statements by kind. BENCH_PROFILE=<file>: a cProfile (process CPU) of caretime's
batches. To compare with another checkout, run this file with `PYTHONPATH=<its>/src`.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import statistics
import sys
import time
from collections import Counter
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
PHONE = "+12065550142"
NO = f'{{"from": "{PHONE}", "body": "no", "shift_id": "shift-1"}}'.encode()
PROFILE = os.environ.get("BENCH_PROFILE")


async def _seed(app: Any) -> None:
    """One caregiver offered one shift, as bench/api.py's seed_offer."""
    transport = httpx.ASGITransport(app=app)
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://b", headers=auth) as http:
        quiet = {"shifts": {"quiet_hours": {"start": "00:00", "end": "00:00"}}}
        assert (await http.patch("/tenants/me/policy", json=quiet)).status_code == 200
        caregiver = {"id": "cg-1", "name": "Bench RN", "phone": PHONE, "roles": ["RN"]}
        assert (await http.post("/caregivers", json=caregiver)).status_code == 201
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        shift = {
            "id": "shift-1", "role_required": "RN", "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=8)).isoformat(),
        }  # fmt: skip
        assert (await http.post("/shifts", json=shift)).status_code == 201
        fanout = await http.post("/shifts/shift-1/fanout")
        assert fanout.status_code < 300, fanout.text


async def _seed_twin(twin: Any) -> None:
    async with twin.state.engine.begin() as connection:
        insert = "INSERT INTO bare_offers (phone, shift_id, status) VALUES (:p, 'shift-1', 'open')"
        await connection.execute(text(insert), {"p": PHONE})


async def _batch(app: Any, path: str, count: int, callers: int) -> float:
    """CPU µs per request for `count` "no" replies from `callers` at once."""
    request = _asgi.scope("POST", path, key=KEY, body=NO)
    left = [count]

    async def caller() -> None:
        while left[0] > 0:
            left[0] -= 1
            status, answer = await _asgi.call(app, request, NO)
            if status != 200 or b'"declined"' not in answer:
                raise RuntimeError(f"{status}: {answer[:300]!r}")

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return (time.process_time() - started) / count * 1e6


def _counting(runtime: Runtime, kinds: Counter[str]) -> None:
    engines = {runtime.engine.sync_engine, runtime.read_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", lambda c, cur, s, *a: _note(kinds, s))
        event.listen(engine, "commit", lambda c: kinds.update(["COMMIT"]))


def _note(kinds: Counter[str], statement: str) -> None:
    kinds[" ".join(statement.split())[:70]] += 1


async def _measure(url: str, batches: int, per_batch: int, callers: int) -> None:
    runtime = Runtime.build(Settings(database_url=url, api_key=KEY, workers=0))
    app = create_app(runtime=runtime)
    twin = bare_app.make_app(url)
    runs = {"caretime": (app, "/messages/inbound"), "twin": (twin, "/update")}
    spent: dict[str, list[float]] = {name: [] for name in runs}
    profile = cProfile.Profile(time.process_time) if PROFILE else None
    kinds: Counter[str] = Counter()
    async with app.router.lifespan_context(app), twin.router.lifespan_context(twin):
        await _seed(app)
        await _seed_twin(twin)
        for target, path in runs.values():
            await _batch(target, path, per_batch, callers)  # warm up: pools, caches
        _counting(runtime, kinds)
        for turn in range(batches):
            for name, (target, path) in list(runs.items())[:: 1 if turn % 2 == 0 else -1]:
                if profile and name == "caretime":
                    profile.enable()
                spent[name].append(await _batch(target, path, per_batch, callers))
                if profile and name == "caretime":
                    profile.disable()
    await runtime.close()
    medians = {name: statistics.median(values) for name, values in spent.items()}
    for name, values in spent.items():
        print(f"{name:9} CPU per request: median {medians[name]:.0f} µs "
              f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip
    print(f"ratio (twin / caretime CPU): {medians['twin'] / medians['caretime']:.2f}")
    requests = batches * per_batch
    print(f"caretime statements per request: {sum(kinds.values()) / requests:.3f}")
    for kind, n in kinds.most_common():
        print(f"  {n / requests:6.3f}  {kind}")
    if profile and PROFILE:
        profile.dump_stats(PROFILE)


def main() -> None:
    numbers = [int(a) for a in sys.argv[2:5]]
    batches, per_batch, callers = numbers + [9, 300, 16][len(numbers) :]
    print(f"load average {os.getloadavg()[0]:.2f}")
    for kind in sys.argv[1:2] or ["sqlite", "postgres"]:
        print(f"== {kind}")
        with scratch_database(kind, "caretime_asgi_inbound") as url:
            asyncio.run(_measure(url, batches, per_batch, callers))


if __name__ == "__main__":
    main()
