"""Webhook delivery benchmark on PostgreSQL: 10,000 events to 3 loopback endpoints.

    python bench/events.py            (or `make bench`)

Prints deliveries/s (10,000 events committed in batches, every one delivered to each of 3
endpoints), p50/p99 from commit to receipt with events committed at a steady 500/s, and,
in the same run and with the same worker processes, the dispatcher's no-op job rate: the
ratio says how much of the dispatcher's raw speed a delivery keeps.

The receiver is a separate process (uvicorn, a bare ASGI app answering 204) that reports
each receipt as a UDP datagram (event id, wall time) to this process; commit times are
taken here right after each commit. Two `caretime worker` processes deliver.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import free_port, postgres_database

EVENTS = int(os.environ.get("CARETIME_BENCH_EVENTS", "10000"))
RATE = 500  # events per second, for the latency run
RATE_SECONDS = int(os.environ.get("CARETIME_BENCH_RATE_SECONDS", "10"))
NOOP_JOBS = int(os.environ.get("CARETIME_BENCH_NOOP_JOBS", "20000"))
ENDPOINTS = 3
WORKERS = 2
CONCURRENCY = 32
BATCH = 500
TIMEOUT = 1800.0
CEILING_REQUESTS = 1000  # per endpoint


# -- subprocesses ---------------------------------------------------------------------------


def run_receiver(port: int, report_port: int) -> None:
    import uvicorn

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = dict(scope["headers"])
        message = headers.get(b"webhook-id", b"") + b" " + str(time.time()).encode()
        udp.sendto(message, ("127.0.0.1", report_port))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_worker(url: str) -> None:
    from datetime import timedelta

    from caretime.config import Settings
    from caretime.dispatch import JobContext, job_handler
    from caretime.dispatch.pool import run_worker_process

    @job_handler("bench.noop")
    async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
        pass

    settings = Settings(database_url=url, workers=0, log_level="WARNING")
    asyncio.run(run_worker_process(settings, concurrency=CONCURRENCY, lease=timedelta(seconds=60)))


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.DEVNULL)


# -- the benchmark --------------------------------------------------------------------------


class Receipts(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.at: dict[str, list[float]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        event_id, at = data.decode().split(" ")
        self.at.setdefault(event_id, []).append(float(at))

    def count(self) -> int:
        return sum(len(times) for times in self.at.values())


async def _setup(url: str, receiver_port: int) -> tuple[Any, str]:
    from caretime import migrate
    from caretime.clock import SystemClock
    from caretime.config import Settings
    from caretime.db import transaction
    from caretime.events.webhooks.endpoints import create_endpoint
    from caretime.events.webhooks.schemas import EndpointIn
    from caretime.runtime import Runtime
    from caretime.tenancy import service as tenancy

    runtime = Runtime.build(Settings(database_url=url, workers=0), SystemClock())
    await migrate.upgrade(runtime.engine)
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.create_tenant(session, "bench", now=runtime.clock.now())
        for n in range(ENDPOINTS):
            body = EndpointIn(url=f"http://127.0.0.1:{receiver_port}/hook/{n}")
            await create_endpoint(session, tenant.id, body, env="test", now=runtime.clock.now())
    return runtime, tenant.id


async def _emit_batch(
    runtime: Any, tenant_id: str, first: int, count: int
) -> tuple[list[str], float]:
    """`count` events in one transaction; returns their ids and the commit time."""
    from sqlalchemy import select

    from caretime.db import transaction
    from caretime.events import emit_many
    from caretime.events.models import Event

    subjects = [f"s{first + i}" for i in range(count)]
    async with transaction(runtime.sessions) as session:
        await emit_many(session, tenant_id=tenant_id, type="shift.filled",
                        subjects=("shift", subjects), data=[{"n": first + i} for i in range(count)],
                        now=datetime.now(UTC))  # fmt: skip
        ids = (await session.scalars(select(Event.id).where(Event.subject_id.in_(subjects)))).all()
    return list(ids), time.time()


async def _wait_for(receipts: Receipts, expected: int) -> float:
    deadline = time.monotonic() + TIMEOUT
    while receipts.count() < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{receipts.count()} of {expected} deliveries arrived")
        await asyncio.sleep(0.05)
    return max(max(times) for times in receipts.at.values())


async def throughput(runtime: Any, tenant_id: str, receipts: Receipts) -> float:
    started = time.time()
    for first in range(0, EVENTS, BATCH):
        await _emit_batch(runtime, tenant_id, first, min(BATCH, EVENTS - first))
    last = await _wait_for(receipts, EVENTS * ENDPOINTS)
    return EVENTS * ENDPOINTS / (last - started)


async def latency(runtime: Any, tenant_id: str, receipts: Receipts) -> list[float]:
    committed: dict[str, float] = {}
    per_tick, start = RATE // 10, time.monotonic()
    for tick in range(RATE_SECONDS * 10):
        await asyncio.sleep(max(0.0, start + tick / 10 - time.monotonic()))
        ids, at = await _emit_batch(runtime, tenant_id, 10**7 + tick * per_tick, per_tick)
        committed.update(dict.fromkeys(ids, at))
    await _wait_for(receipts, len(committed) * ENDPOINTS)
    return sorted(
        t - committed[i] for i, times in receipts.at.items() if i in committed for t in times
    )


async def noop_rate(runtime: Any) -> float:
    from sqlalchemy import func, select, text

    from caretime.dispatch.models import Job

    async with runtime.engine.begin() as connection:
        started = time.time()
        await connection.execute(text(
            "INSERT INTO jobs (kind, payload, run_at, priority, status, attempts, max_attempts,"
            " created_at, updated_at) SELECT 'bench.noop', '{}', now(), 0, 'queued', 0, 5,"
            " now(), now() FROM generate_series(1, :n)"), {"n": NOOP_JOBS})  # fmt: skip
        await connection.execute(text("NOTIFY caretime_jobs"))
    left = select(func.count()).where(Job.kind == "bench.noop", Job.status != "done")
    while True:
        async with runtime.sessions() as session:
            if not await session.scalar(left):
                last = await session.scalar(
                    select(func.max(Job.finished_at)).where(Job.kind == "bench.noop"))  # fmt: skip
                return NOOP_JOBS / (last.timestamp() - started)
        await asyncio.sleep(0.05)


async def receiver_ceiling(runtime: Any, receiver_port: int) -> float:
    """The twin without database or dispatcher: this one process sends signed deliveries to
    the same receiver through the same sending code, 3 endpoints at once: what HTTP alone
    allows on this machine now."""
    from caretime.events.webhooks.sending import Outgoing, Target, http_client, send_all

    body = '{"data":{"n":1},"type":"shift.filled"}'
    targets = [Target(f"t{n}", f"http://127.0.0.1:{receiver_port}/hook/{n}", "whsec_" + "A" * 32,
                      None) for n in range(ENDPOINTS)]  # fmt: skip
    outgoing = [Outgoing(i, f"ceiling_{i}", body) for i in range(CEILING_REQUESTS)]
    started = time.time()
    await asyncio.gather(*(send_all(http_client(runtime, t.id), t, outgoing) for t in targets))
    return CEILING_REQUESTS * ENDPOINTS / (time.time() - started)


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(url: str) -> None:
    receipts = Receipts()
    report_port, receiver_port = free_port(), free_port()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: receipts, local_addr=("127.0.0.1", report_port)
    )
    runtime, tenant_id = await _setup(url, receiver_port)
    processes = [_spawn("receiver", str(receiver_port), str(report_port))]
    processes += [_spawn("worker", url) for _ in range(WORKERS)]
    try:
        await asyncio.sleep(3)  # workers and receiver up
        rate = await throughput(runtime, tenant_id, receipts)
        receipts.at.clear()
        delays = await latency(runtime, tenant_id, receipts)
        jobs = await noop_rate(runtime)
        ceiling = await receiver_ceiling(runtime, receiver_port)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        transport.close()
        await runtime.close()
    print(f"machine: {os.cpu_count()} cores, shared (measured under load)")
    print(f"deliveries/s, {EVENTS} events x {ENDPOINTS} endpoints, {WORKERS} workers: {rate:,.0f}"
          f"  (target >= 2,000)")  # fmt: skip
    p50, p99 = statistics.median(delays) * 1000, _percentile(delays, 0.99) * 1000
    print(f"commit -> receipt at {RATE} events/s for {RATE_SECONDS}s: p50 {p50:.0f} ms,"
          f" p99 {p99:.0f} ms  (target p99 <= 1,000 ms)")  # fmt: skip
    print(f"dispatcher no-op jobs/s, same workers: {jobs:,.0f};"
          f" deliveries/s : no-op jobs/s = {rate / jobs:.2f}")  # fmt: skip
    print(f"HTTP alone (same sending code, one process, no database), same receiver:"
          f" {ceiling:,.0f} requests/s; deliveries/s : HTTP alone = {rate / ceiling:.2f}"
          )  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "receiver":
        run_receiver(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "worker":
        run_worker(sys.argv[2])
    else:
        with postgres_database("caretime_bench_events") as database_url:
            asyncio.run(main(database_url))
