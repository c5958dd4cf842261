"""Booking over HTTP on PostgreSQL: reservations/s with 32 concurrent clients over 5,000 free
slots and over 10 contended slots, GET /slots latency (1 provider × 31 days, 500 providers ×
1 day), beside a bare FastAPI endpoint doing one INSERT on the same server (the ceiling).

Visit types: GET /slots?visit_type= (45 minutes plus a 15-minute buffer, over days already
holding visits of 15, 30 and 45 minutes) beside the plain 15-minute query in the same run
(target ≤ 1.5×); and reservations/s with the exclusion constraint (the guarantee since
migration 0016) beside a twin database that has the old partial unique index instead
(target ≥ 0.8×), same workload, in alternating rounds so load drift falls on both alike; the
plain and typed searches alternate query by query for the same reason.

Creates and drops its own database; serves the app with uvicorn in a subprocess. PostgreSQL
comes from CARETIME_BENCH_POSTGRES_URL (or CARETIME_TEST_POSTGRES_URL, or localhost).
Run: `python bench/booking.py`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import aliased

from _harness import free_port, wait_until_up
from caretime import migrate
from caretime.app import create_app
from caretime.booking.models import Appointment, AvailabilityRule, Provider, VisitType
from caretime.config import Settings
from caretime.db import create_engine
from caretime.ids import new_id
from caretime.runtime import Runtime
from caretime.tenancy.models import Tenant

KEY = "ct_bench_booking_key"
CLIENTS = 32
# Smaller runs for a loaded machine: BENCH_FREE_SLOTS=1000 BENCH_SLOT_QUERIES=20 ...
FREE_SLOTS = int(os.environ.get("BENCH_FREE_SLOTS", "5000"))
CONTENDED_SLOTS = 10
CONTENDED_ATTEMPTS = int(os.environ.get("BENCH_CONTENDED_ATTEMPTS", "3000"))
CEILING_REQUESTS = int(os.environ.get("BENCH_CEILING_REQUESTS", "5000"))
SLOT_QUERIES = int(os.environ.get("BENCH_SLOT_QUERIES", "200"))
FREE_ROUNDS = int(os.environ.get("BENCH_FREE_ROUNDS", "6"))
TARGET_PER_SECOND = 1_500
SLOTS_RATIO_TARGET = 1.5
CONSTRAINT_RATIO_TARGET = 0.8
VISIT_TYPE = "consult"  # 45 minutes, 15-minute buffer after
DB_CONNECTIONS = int(os.environ.get("BENCH_DB_CONNECTIONS", "16"))
FIRST_DAY = datetime.now(UTC).date() + timedelta(days=10)


def bench_app() -> FastAPI:
    """caretime plus one bare endpoint: no auth, one INSERT in one transaction (the ceiling)."""
    runtime = Runtime.build(Settings())
    # The PostgreSQL server is shared: cap this server's connections (default pool: 30).
    runtime.engine = create_engine(
        runtime.settings.database_url, pool_size=DB_CONNECTIONS, max_overflow=0
    )
    runtime.sessions.configure(bind=runtime.engine)
    app = create_app(runtime=runtime)

    @app.post("/bench/ceiling", status_code=201)
    async def ceiling() -> dict[str, bool]:
        async with runtime.engine.begin() as connection:
            await connection.execute(text("INSERT INTO bench_ceiling (at) VALUES (now())"))
        return {"ok": True}

    return app


def admin_url() -> str:
    raw = os.environ.get("CARETIME_BENCH_POSTGRES_URL") or os.environ.get(
        "CARETIME_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    return make_url(raw).set(drivername="postgresql+asyncpg").render_as_string(False)


UNIQUE_INDEX_TWIN = (
    "ALTER TABLE appointments DROP CONSTRAINT ex_appointments_active_overlap",
    "CREATE UNIQUE INDEX uq_appointments_active_slot ON appointments "
    "(tenant_id, provider_id, slot_start) WHERE status IN ('held', 'confirmed')",
)


@asynccontextmanager
async def fresh_database(*, unique_index: bool = False) -> AsyncIterator[str]:
    """A migrated database; `unique_index`: the twin whose guarantee is the pre-0016 index."""
    name = f"caretime_bench_booking_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url()).set(database=name).render_as_string(False)
    try:
        engine = create_engine(url)
        await migrate.upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, at timestamptz)")
            )
            for statement in UNIQUE_INDEX_TWIN if unique_index else ():
                await connection.execute(text(statement))
        await engine.dispose()
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@contextmanager
def server(database_url: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CARETIME_DATABASE_URL": database_url, "CARETIME_API_KEY": KEY}
    env.update(CARETIME_LOG_LEVEL="WARNING", CARETIME_WORKERS="1")
    command = [sys.executable, "-m", "uvicorn", "booking:bench_app", "--factory"]
    command += ["--app-dir", str(Path(__file__).parent), "--port", str(port)]
    # Idle keep-alive connections outlive a busy moment of a loaded machine.
    command += ["--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "120"]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


async def seed(database_url: str) -> None:
    """Providers and availability written straight into the tables (not what is measured).
    bulk-*: 27 providers × 2 days × 96 slots (5,000 free slots used); contended: 10 slots;
    month: 08:00–17:00 every day for 31 days; p000–p499: 08:00–17:00 on one day."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        tenant_id = await connection.scalar(select(Tenant.id).where(Tenant.name == "default"))
        providers = [f"bulk-{n:02d}" for n in range(27)] + ["contended", "month"]
        providers += [f"p{n:03d}" for n in range(500)]
        await connection.execute(
            insert(Provider),
            [
                {"tenant_id": tenant_id, "id": p, "name": p, "tz": "UTC", "created_at": now}
                for p in providers
            ],
        )
        rules = [
            rule(tenant_id, f"bulk-{n:02d}", FIRST_DAY + timedelta(days=d), 0, 1440, now)
            for n in range(27)
            for d in range(2)
        ]
        rules.append(rule(tenant_id, "contended", FIRST_DAY, 0, CONTENDED_SLOTS * 15, now))
        rules += [
            rule(tenant_id, "month", FIRST_DAY + timedelta(days=d), 480, 1020, now)
            for d in range(31)
        ]
        rules += [rule(tenant_id, f"p{n:03d}", FIRST_DAY, 480, 1020, now) for n in range(500)]
        await connection.execute(insert(AvailabilityRule), rules)
        searched = ["month"] + [f"p{n:03d}" for n in range(500)]
        await connection.execute(
            insert(VisitType), [visit_type(tenant_id, p, now) for p in searched]
        )
        await connection.execute(insert(Appointment), mixed_visits(tenant_id, now))
    await engine.dispose()


def visit_type(tenant_id: str, provider_id: str, now: datetime) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "provider_id": provider_id,
        "id": VISIT_TYPE,
        "name": "Consultation",
        "minutes": 45,
        "buffer_before": 0,
        "buffer_after": 15,
        "created_at": now,
    }


def mixed_visits(tenant_id: str, now: datetime) -> list[dict[str, object]]:
    """Confirmed visits of 15, 30 and 45 minutes at 09:00, 11:00 and 14:00 on every searched
    day, so both slot searches subtract real busy time."""
    rows = []
    days = [("month", FIRST_DAY + timedelta(days=d)) for d in range(31)]
    days += [(f"p{n:03d}", FIRST_DAY) for n in range(500)]
    for provider_id, day in days:
        for hour, minutes in ((9, 15), (11, 30), (14, 45)):
            start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)
            end = start + timedelta(minutes=minutes)
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "id": new_id("apt"),
                    "provider_id": provider_id,
                    "client_id": "seed",
                    "slot_start": start,
                    "slot_end": end,
                    "occupied_start": start,
                    "occupied_end": end,
                    "status": "confirmed",
                    "hold_expires_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": now,
                }
            )
    return rows


def rule(
    tenant_id: str, provider_id: str, day: date, start: int, end: int, now: datetime
) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "id": new_id("avl"),
        "provider_id": provider_id,
        "kind": "add",
        "day": day,
        "weekdays": 0,
        "start_minute": start,
        "end_minute": end,
        "created_at": now,
    }


def slot_instants(day: date, count: int) -> list[str]:
    return [f"{day.isoformat()}T{m // 60:02d}:{m % 60:02d}:00Z" for m in range(0, count * 15, 15)]


async def closed_loop(
    work: list[Callable[[], Awaitable[httpx.Response]]], clients: int
) -> tuple[float, Counter[int], list[float]]:
    """Run the requests with `clients` concurrent loops; returns seconds, statuses, latencies."""
    queue = iter(work)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    async def client_loop() -> None:
        for request in queue:
            started = time.perf_counter()
            response = await request()
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return time.perf_counter() - started, statuses, latencies


def reservation(
    http: httpx.AsyncClient, provider_id: str, slot: str, n: int
) -> Callable[[], Awaitable[httpx.Response]]:
    body = {"provider_id": provider_id, "slot_start": slot, "client_id": f"patient-{n}"}
    return lambda: http.post("/reservations", json=body)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(base: str) -> dict[str, float]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {KEY}"}
    results: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as http:
        await http.get("/tenants/me")
        seconds, statuses, _ = await closed_loop(
            [lambda: http.post("/bench/ceiling")] * CEILING_REQUESTS, CLIENTS
        )
        assert statuses == {201: CEILING_REQUESTS}, statuses
        results["ceiling_per_s"] = CEILING_REQUESTS / seconds

        contended = slot_instants(FIRST_DAY, CONTENDED_SLOTS)
        work = [
            reservation(http, "contended", contended[n % CONTENDED_SLOTS], n)
            for n in range(CONTENDED_ATTEMPTS)
        ]
        seconds, statuses, latencies = await closed_loop(work, CLIENTS)
        assert statuses == {201: CONTENDED_SLOTS, 409: CONTENDED_ATTEMPTS - CONTENDED_SLOTS}, (
            statuses
        )
        results["contended_per_s"] = CONTENDED_ATTEMPTS / seconds
        results["contended_p50_ms"] = percentile(latencies, 0.5) * 1000
        results["contended_p99_ms"] = percentile(latencies, 0.99) * 1000

        start = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
        month = {
            "provider_id": "month",
            "start": start.isoformat(),
            "end": (start + timedelta(days=31)).isoformat(),
            "limit": 1000,
        }
        day = {
            "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(),
            "limit": 1000,
        }
        typed = {"visit_type": VISIT_TYPE}
        searches = (
            ("slots_month", month),
            ("slots_500", day),
            ("typed_month", {**month, **typed}),
            ("typed_500", {**day, **typed}),
        )
        pairs = ((searches[0], searches[2]), (searches[1], searches[3]))
        for (plain, plain_params), (typed, typed_params) in pairs:
            latencies_by_name: dict[str, list[float]] = {plain: [], typed: []}
            # Alternate the two searches so a busy moment of the machine falls on both alike.
            for _ in range(SLOT_QUERIES):
                for name, params in ((plain, plain_params), (typed, typed_params)):
                    started = time.perf_counter()
                    response = await http.get("/slots", params=params)
                    latencies_by_name[name].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
            for name, latencies in latencies_by_name.items():
                results[f"{name}_p50_ms"] = percentile(latencies, 0.5) * 1000
                results[f"{name}_p99_ms"] = percentile(latencies, 0.99) * 1000
    return results


def free_slots() -> list[tuple[str, str]]:
    """The free 15-minute slots (provider, start) of the throughput workload, in order."""
    slots = [
        (f"bulk-{n:02d}", s)
        for n in range(27)
        for d in range(2)
        for s in slot_instants(FIRST_DAY + timedelta(days=d), 96)
    ]
    return slots[:FREE_SLOTS]


async def reserve_free(base: str, slots: list[tuple[str, str]]) -> tuple[float, list[float]]:
    """Reserve every given slot with CLIENTS concurrent clients; seconds and latencies."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as http:
        await http.get("/tenants/me")
        work = [reservation(http, p, s, n) for n, (p, s) in enumerate(slots)]
        seconds, statuses, latencies = await closed_loop(work, CLIENTS)
        assert statuses == {201: len(slots)}, statuses
    return seconds, latencies


async def interleaved_free_reservations(base: str, twin_base: str) -> dict[str, float]:
    """The free-slot workload on the exclusion-constraint server and on its unique-index twin,
    in alternating rounds of distinct slots, so the load of a shared machine drifting during
    the run falls on both alike."""
    slots = free_slots()
    chunk = -(-len(slots) // FREE_ROUNDS)
    seconds = {base: 0.0, twin_base: 0.0}
    latencies: list[float] = []
    for start in range(0, len(slots), chunk):
        for target in (base, twin_base) if start % (2 * chunk) == 0 else (twin_base, base):
            spent, measured = await reserve_free(target, slots[start : start + chunk])
            seconds[target] += spent
            if target == base:
                latencies += measured
    return {
        "free_per_s": len(slots) / seconds[base],
        "free_p99_ms": percentile(latencies, 0.99) * 1000,
        "twin_free_per_s": len(slots) / seconds[twin_base],
    }


async def double_bookings(database_url: str) -> int:
    """Pairs of active visits of one provider whose occupied spans overlap."""
    engine = create_engine(database_url)
    other = aliased(Appointment)
    active = ("held", "confirmed", "arrived")
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count())
            .select_from(Appointment)
            .join(
                other,
                and_(
                    other.provider_id == Appointment.provider_id,
                    other.id < Appointment.id,
                    other.status.in_(active),
                    other.occupied_start < Appointment.occupied_end,
                    other.occupied_end > Appointment.occupied_start,
                ),
            )
            .where(Appointment.status.in_(active))
        )
    await engine.dispose()
    return count or 0


def report(results: dict[str, float], doubled: int) -> None:
    ceiling = results["ceiling_per_s"]
    print(f"{'ceiling: bare FastAPI endpoint, one INSERT':<46} {ceiling:8.0f} req/s")
    for key, label in (
        ("free_per_s", f"reserve, {FREE_SLOTS} free slots"),
        ("contended_per_s", f"reserve, {CONTENDED_SLOTS} contended slots"),
    ):
        value = results[key]
        ratios = f"{value / ceiling:.2f}× ceiling, {value / TARGET_PER_SECOND:.2f}× target"
        print(f"{label:<46} {value:8.0f} req/s  = {ratios}")
    print(f"  free p99 {results['free_p99_ms']:.1f} ms")
    print(f"  contended p50 {results['contended_p50_ms']:.1f} ms")
    print(f"  contended p99 {results['contended_p99_ms']:.1f} ms")
    for key, label in (
        ("slots_month", "GET /slots 1 provider × 31 days"),
        ("slots_500", "GET /slots 500 providers × 1 day"),
        ("typed_month", "  ?visit_type=, 1 provider × 31 days"),
        ("typed_500", "  ?visit_type=, 500 providers × 1 day"),
    ):
        p50, p99 = results[f"{key}_p50_ms"], results[f"{key}_p99_ms"]
        print(f"{label:<46} p50 {p50:.1f} ms  p99 {p99:.1f} ms")
    for plain, typed in (("slots_month", "typed_month"), ("slots_500", "typed_500")):
        ratio = results[f"{typed}_p99_ms"] / results[f"{plain}_p99_ms"]
        verdict = "✔" if ratio <= SLOTS_RATIO_TARGET else "✘"
        target = f"(target ≤ {SLOTS_RATIO_TARGET}×) {verdict}"
        print(f"  {typed} p99 / 15-minute p99 = {ratio:.2f}× {target}")
    exclusion, unique = results["free_per_s"], results["twin_free_per_s"]
    ratio = exclusion / unique
    verdict = "✔" if ratio >= CONSTRAINT_RATIO_TARGET else "✘"
    print(f"{'reserve, free slots, unique-index twin':<46} {unique:8.0f} req/s")
    print(
        f"  exclusion constraint / unique index = {ratio:.2f}× "
        f"(target ≥ {CONSTRAINT_RATIO_TARGET}×) {verdict}"
    )
    print(f"double bookings (overlapping active visits): {doubled}")


async def main() -> None:
    async with fresh_database() as url, fresh_database(unique_index=True) as twin:
        with server(url) as base, server(twin) as twin_base:
            await seed(url)
            await seed(twin)
            results = await interleaved_free_reservations(base, twin_base)
            results |= await measure(base)
        doubled = await double_bookings(url)
    report(results, doubled)
    if doubled:
        raise SystemExit("double booking found")


if __name__ == "__main__":
    asyncio.run(main())
