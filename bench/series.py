"""Recurring calls: a batch whose items each start a series (first occurrence planned and
written one item at a time) beside its twin, the same batch without `recurrence` (the bulk
path), posted to one server on PostgreSQL in the same run; then how fast series move on when
their occurrences end (one `outreach.series_next` job each).

    python bench/series.py                  # 2,000 items each way
    BENCH_SERIES_ITEMS=200 python bench/series.py
    BENCH_SERIES_NEXT=0 python bench/series.py     # the two batches only
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

sys.path.insert(0, str(Path(__file__).parent))
from _harness import caretime_server, postgres_database
from caretime.db import create_engine, transaction
from caretime.dispatch.queue import enqueue_many
from caretime.outreach.models import Call
from caretime.outreach.series_jobs import series_next_job

ITEMS = int(os.environ.get("BENCH_SERIES_ITEMS", 2_000))
# BENCH_SERIES_NEXT=0 measures the batches only, not the series moving on (minutes at load).
NEXT = os.environ.get("BENCH_SERIES_NEXT", "1") != "0"
KEY = "ct_bench_series_key"
RULE = "FREQ=DAILY;COUNT=30"


def items(exchange: int, *, recurring: bool) -> list[dict[str, str]]:
    extra = {"recurrence": RULE} if recurring else {}
    return [{"name": f"P{i}", "phone": f"212-{exchange}-{i:04d}", **extra} for i in range(ITEMS)]


async def post(url: str, body: list[dict[str, str]]) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        await http.patch("/tenants/me/policy", json={"calling": {"max_calls_per_minute": 1000}})
        started = time.perf_counter()
        response = await http.post("/schedule", json=body)
        response.raise_for_status()
        elapsed = time.perf_counter() - started
    assert all(item["status"] == "scheduled" for item in response.json())
    return elapsed


async def end_occurrences(database_url: str) -> None:
    """Every series' first call ends and its wake-up is due: the rows call_changed writes
    when an outcome ends a call, made here in one transaction for the benchmark."""
    engine = create_engine(database_url)
    try:
        async with transaction(async_sessionmaker(engine)) as session:
            ended = await session.execute(
                update(Call)
                .where(Call.series_id.is_not(None))
                .values(status="completed")
                .returning(Call.tenant_id, Call.series_id, Call.id)
            )
            now = datetime.now(UTC)
            jobs = [series_next_job(tenant, series, at=now, reason=f"after:{call}")
                    for tenant, series, call in ended.all() if series is not None]  # fmt: skip
            await enqueue_many(session, jobs)
    finally:
        await engine.dispose()


async def wait_for_next_occurrences(database_url: str, wanted: int) -> float:
    engine = create_engine(database_url)
    started = time.perf_counter()
    try:
        while True:
            async with engine.connect() as connection:
                pending = await connection.scalar(
                    select(func.count())
                    .select_from(Call)
                    .where(Call.series_id.is_not(None), Call.status == "scheduled")
                )
            if (pending or 0) >= wanted or time.perf_counter() - started > 600:
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


def main() -> None:
    with postgres_database("caretime_bench_series") as database_url:
        env = {"CARETIME_DATABASE_URL": database_url, "CARETIME_API_KEY": KEY}
        with caretime_server(env) as url:
            plain = asyncio.run(post(url, items(555, recurring=False)))
            recurring = asyncio.run(post(url, items(556, recurring=True)))
        moved_on = None
        if NEXT:
            asyncio.run(end_occurrences(database_url))
            with caretime_server(env, workers=2):
                moved_on = asyncio.run(wait_for_next_occurrences(database_url, ITEMS))
    print(f"Recurring calls, PostgreSQL, {ITEMS:,} items each way (load {os.getloadavg()[0]:.1f}):")
    print(f"  plain batch       {ITEMS / plain:10,.0f} items/s  ({plain:.2f} s, bulk path)")
    print(f"  recurring batch   {ITEMS / recurring:10,.0f} items/s  ({recurring:.2f} s, a series "
          "and its first call per item)")  # fmt: skip
    print(f"  ratio             {recurring / plain:10.1f}x the plain twin's time")
    if moved_on is not None:
        print(f"  next occurrences  {ITEMS / moved_on:10,.0f} series/s  ({moved_on:.2f} s for "
              f"{ITEMS:,} wake-ups, 2 workers)")  # fmt: skip


if __name__ == "__main__":
    main()
