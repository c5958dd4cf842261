"""A burst of "yes" replies to one shift, driven by `wrk`, beside a bare FastAPI twin.

1,000 caregivers (BENCH_REPLIES) were offered one shift; each replies "yes" once to
`POST /messages/inbound`, from 64 connections (BENCH_REPLY_CONNECTIONS) at once. A wrk Lua
script gives every request a distinct caregiver's phone and stops each wrk thread when its
share is answered. Beside it, in the same run and under the same uvicorn settings, a bare
FastAPI app answers the same requests with one conditional UPDATE on the same PostgreSQL
(`... SET status = 'filled' WHERE id = ... AND status = 'open'`): the least any service can
do to give one shift to exactly one of many callers.

Printed: requests/s, p50/p99 (wrk's), the ratio to the twin, the load average. Asserted
(in the bench, not a test): every request answered with 200, exactly one "assigned" on
each side, and in caretime's database one assignment and every reply recorded and routed.

Targets (issue 18): p99 ≤ 1 s, throughput ≥ 0.5× the twin.

Sizes: BENCH_REPLIES (1,000), BENCH_REPLY_CONNECTIONS (64), BENCH_REPLY_WORKERS (in-process
dispatcher workers of the server, 2; 0 measures the request path alone, as with workers in
their own process: the offers and answers then stay queued). BENCH_REPLY_ANALYZE=0 skips the
ANALYZE before the burst (tables as a fan-out a moment old leaves them).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).parent))
from _harness import caretime_server, free_port, postgres_database
from _wrk import ensure_wrk
from caretime.dispatch.models import Job
from caretime.messaging import Message
from caretime.shifts.models import Caregiver, CaregiverRole, Shift, ShiftEvent
from caretime.tenancy.models import Tenant

KEY = "ct_bench_key"
REPLIES = int(os.environ.get("BENCH_REPLIES", "1000"))
CONNECTIONS = int(os.environ.get("BENCH_REPLY_CONNECTIONS", "64"))
WRK_THREADS = 2
WORKERS = int(os.environ.get("BENCH_REPLY_WORKERS", "2"))
SHIFT_ID = "burst"
# 0: the burst meets tables never analysed (a fan-out a moment old, before autovacuum).
ANALYZE = os.environ.get("BENCH_REPLY_ANALYZE", "1") == "1"
# wrk's own timeout is 2 s; a slow answer must count as slow, not as lost.
WRK_TIMEOUT = "60s"
MAX_SECONDS = 600
TARGET_P99_MS = 1000.0
TARGET_RATIO = 0.5

# Each wrk thread sends the replies of indices tid, tid + threads, ... below N, one per
# connection at a time; `delay` parks a connection once its thread has sent its share (so
# nothing beyond N is sent), and the thread stops when its share is answered.
WRK_SCRIPT = """
local N = {replies}
local threads = {{}}
local created = 0

function setup(thread)
  thread:set("tid", created)
  table.insert(threads, thread)
  created = created + 1
end

function init(args)
  nthreads = tonumber(args[1])
  quota, sent, answered, assigned, failed, started = 0, 0, 0, 0, 0, false
  for i = tid, N - 1, nthreads do quota = quota + 1 end
  headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}"}}
end

function delay()
  started = true
  if sent >= quota then return 3600000 end
  return 0
end

function request()
  -- wrk calls request() once before the run to check it: that call must not use a phone
  -- (a connection's every real request follows a call to delay()).
  local index = tid + sent * nthreads
  if started then sent = sent + 1 end
  local body = string.format('{{"from":"+1206%07d","body":"yes"}}', 2000000 + index)
  return wrk.format("POST", "/messages/inbound", headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    failed = failed + 1
  elseif string.find(body, '"action":%s*"assigned"') then
    assigned = assigned + 1
  end
  if answered >= quota then
    io.write(string.format("thread %d done\\n", tid))
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local answered, assigned, failed = 0, 0, 0
  for _, thread in ipairs(threads) do
    answered = answered + thread:get("answered")
    assigned = assigned + thread:get("assigned")
    failed = failed + thread:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT answered=%d assigned=%d non200=%d p50_us=%d p99_us=%d max_us=%d " ..
    "timeouts=%d socket_errors=%d\\n",
    answered, assigned, failed, latency:percentile(50), latency:percentile(99), latency.max,
    e.timeout, e.connect + e.read + e.write))
end
"""


def phone(n: int) -> str:
    return f"+1206{2000000 + n:07d}"


CLAIM = text(
    "UPDATE bench_twin_shifts SET status = 'filled', assigned = :caller"
    " WHERE id = 'burst' AND status = 'open'"
)


class TwinReply(BaseModel):
    sender: str = Field(alias="from")
    body: str


def twin_app(database_url: str) -> FastAPI:
    """The bare twin: the same request answered by one conditional UPDATE, committed (also
    called in process by bench/replies_asgi.py). Its pool is caretime's default (32), so
    neither side churns connections."""
    engine = create_async_engine(database_url, pool_size=32, max_overflow=20)
    app = FastAPI()
    app.state.engine = engine  # for an in-process bench that counts its statements

    @app.post("/messages/inbound")
    async def inbound(reply: TwinReply) -> dict[str, str]:
        async with engine.begin() as connection:
            claimed = await connection.execute(CLAIM, {"caller": reply.sender})
        return {"action": "assigned" if claimed.rowcount == 1 else "already_filled"}  # type: ignore[attr-defined]

    return app


def serve_twin(database_url: str, port: int) -> None:
    config = uvicorn.Config(
        twin_app(database_url), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    uvicorn.Server(config).run()


@dataclass
class Burst:
    seconds: float
    answered: int
    assigned: int
    non_200: int
    timeouts: int
    # Connections parked after their share was sent are closed by uvicorn's keep-alive
    # timeout (5 s): wrk counts a read error and reconnects. A lost request would instead
    # leave its thread's share unanswered, which `answered` shows.
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds

    def line(self) -> str:
        return (
            f"{self.per_second:8.0f}/s  p50 {self.p50_ms:7.1f} ms  p99 {self.p99_ms:7.1f} ms  "
            f"max {self.max_ms:7.1f} ms  answered {self.answered}  assigned {self.assigned}  "
            f"non-200 {self.non_200}  timeouts {self.timeouts}  idle closes {self.socket_errors}"
        )


def burst(url: str) -> Burst:
    """The REPLIES "yes" replies through wrk; the wall time runs from wrk's start to the
    moment its last thread reports its share answered (wrk itself sleeps out its -d)."""
    script = WRK_SCRIPT.format(replies=REPLIES, key=KEY)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    command = [
        ensure_wrk(), "-t", str(WRK_THREADS), "-c", str(CONNECTIONS), "-d", f"{MAX_SECONDS}s",
        "--timeout", WRK_TIMEOUT, "-s", lua.name, url, "--", str(WRK_THREADS),
    ]  # fmt: skip
    started = time.perf_counter()
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert wrk.stdout is not None
    finished: set[str] = set()
    seconds = float(MAX_SECONDS)
    for line in wrk.stdout:
        if line.startswith("thread ") and line.strip().endswith("done"):
            # A thread may say it twice: answers already on their way after its stop
            finished.add(line.split()[1])
            if len(finished) == WRK_THREADS:
                seconds = time.perf_counter() - started
                wrk.send_signal(signal.SIGINT)
        elif line.startswith("RESULT"):
            result = dict(field.split("=") for field in line.split()[1:])
    wrk.wait()
    os.unlink(lua.name)
    return Burst(
        seconds=seconds,
        answered=int(result["answered"]),
        assigned=int(result["assigned"]),
        non_200=int(result["non200"]),
        timeouts=int(result["timeouts"]),
        socket_errors=int(result["socket_errors"]),
        p50_ms=int(result["p50_us"]) / 1000,
        p99_ms=int(result["p99_us"]) / 1000,
        max_ms=int(result["max_us"]) / 1000,
    )


async def seed(database_url: str) -> None:
    """REPLIES nurses written straight into the tables (the API path is not measured)."""
    engine = create_async_engine(database_url)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        tenant_id = await connection.scalar(select(Tenant.id).where(Tenant.name == "default"))
        ids = [f"cg-{n:05d}" for n in range(REPLIES)]
        caregivers = [
            {"tenant_id": tenant_id, "id": cid, "name": f"RN {n}", "phone": phone(n),
             "active": True, "created_at": now, "updated_at": now}
            for n, cid in enumerate(ids)
        ]  # fmt: skip
        await connection.execute(insert(Caregiver), caregivers)
        roles = [{"tenant_id": tenant_id, "caregiver_id": cid, "role": "RN"} for cid in ids]
        await connection.execute(insert(CaregiverRole), roles)
    await engine.dispose()


async def offer_the_shift(url: str, database_url: str) -> None:
    """Quiet hours off (the bench runs at any hour), one shift, its fan-out to everyone;
    then wait until the offers are handed over and the database is analysed."""
    start = datetime.now(UTC) + timedelta(hours=6)
    shift = {
        "id": SHIFT_ID, "role_required": "RN", "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=8)).isoformat(),
    }  # fmt: skip
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    ) as http:
        policy = {"shifts": {"quiet_hours": {"start": "00:00", "end": "00:00"}}}
        assert (await http.patch("/tenants/me/policy", json=policy)).status_code == 200
        assert (await http.post("/shifts", json=shift)).status_code == 201
        offered = await http.post(f"/shifts/{SHIFT_ID}/fanout")
        assert offered.json()["offers"] == REPLIES, offered.text
    await settle(database_url)


async def settle(database_url: str) -> None:
    """No job due within a minute is left (the hand-over, the simulator's reports), if the
    server runs workers (without, the jobs wait: replies route without them)."""
    engine = create_async_engine(database_url)
    soon = Job.run_at < datetime.now(UTC) + timedelta(seconds=60)
    waiting = select(func.count()).where(soon, Job.status.in_(["queued", "running"]))
    deadline = time.perf_counter() + (MAX_SECONDS if WORKERS else 0)
    async with engine.connect() as connection:
        while await connection.scalar(waiting) and time.perf_counter() < deadline:
            await connection.commit()
            await asyncio.sleep(0.2)
        await connection.commit()
        if ANALYZE:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE"))
    await engine.dispose()


async def check_caretime(database_url: str) -> tuple[int, int, int]:
    """(assignments in the shift's trail, inbound replies recorded, of them routed)."""
    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        shift = (await connection.execute(select(Shift).where(Shift.id == SHIFT_ID))).one()
        assignments = ShiftEvent.shift_id == SHIFT_ID, ShiftEvent.kind == "assigned"
        assigned = await connection.scalar(select(func.count()).where(*assignments))
        inbound = Message.direction == "inbound"
        recorded = await connection.scalar(select(func.count()).where(inbound))
        routed = await connection.scalar(
            select(func.count()).where(inbound, Message.route_action.is_not(None))
        )
    await engine.dispose()
    assert shift.status == "filled", shift
    assert shift.assigned_caregiver_id is not None, shift
    return int(assigned or 0), int(recorded or 0), int(routed or 0)


async def create_twin_table(database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        table = "bench_twin_shifts (id text PRIMARY KEY, status text, assigned text)"
        await connection.execute(text(f"CREATE TABLE {table}"))
        row = "('burst', 'open', NULL)"
        await connection.execute(text(f"INSERT INTO bench_twin_shifts VALUES {row}"))
    await engine.dispose()


@contextmanager
def twin_server(database_url: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "twin", database_url, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_listening(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/docs", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the twin did not start within 60 s")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(caretime: Burst, twin: Burst, trail: tuple[int, int, int], load: str) -> None:
    ratio = caretime.per_second / twin.per_second
    print(f"load average before the bursts: {load}; after: {load_average()}")
    print(f"  bare twin (one conditional UPDATE)  {twin.line()}")
    print(f"  caretime POST /messages/inbound     {caretime.line()}")
    p99_met = "met" if caretime.p99_ms <= TARGET_P99_MS else "missed"
    ratio_met = "met" if ratio >= TARGET_RATIO else "missed"
    print(f"  p99 {caretime.p99_ms:.0f} ms (target ≤ {TARGET_P99_MS:.0f} ms: {p99_met})")
    print(f"  ratio to the twin {ratio:.2f} (target ≥ {TARGET_RATIO}: {ratio_met})")
    assigned, recorded, routed = trail
    print(f"  caretime: {assigned} assignment, {recorded} replies recorded, {routed} routed")
    # wrk's Lua script may send a few requests beyond its quota as a thread stops (a repeat of
    # a phone already used): every one of the REPLIES must be answered, the extras may be too.
    for side in (caretime, twin):
        assert side.answered >= REPLIES, side
        assert side.non_200 == 0, side
        assert side.timeouts == 0, side
        assert side.assigned == 1, side
    assert assigned == 1, trail
    assert recorded >= REPLIES, trail
    assert routed == recorded, trail


def main() -> None:
    with postgres_database("caretime_bench_replies") as database_url:
        env = {"CARETIME_DATABASE_URL": database_url, "CARETIME_API_KEY": KEY}
        with caretime_server(env, workers=WORKERS) as url:
            asyncio.run(seed(database_url))
            asyncio.run(offer_the_shift(url, database_url))
            print(
                f"PostgreSQL, {REPLIES:,} caregivers offered one shift, each replying 'yes' "
                f"once from {CONNECTIONS} connections (wrk -t{WRK_THREADS}); caretime with "
                f"{WORKERS} in-process workers."
            )
            load = load_average()
            caretime = burst(url)
            asyncio.run(settle(database_url))
            trail = asyncio.run(check_caretime(database_url))
        asyncio.run(create_twin_table(database_url))
        with twin_server(database_url) as twin_url:
            twin = burst(twin_url)
        report(caretime, twin, trail, load)


if __name__ == "__main__":
    if sys.argv[1:2] == ["twin"]:
        serve_twin(sys.argv[2], int(sys.argv[3]))
    else:
        main()
