"""A burst of "yes" replies to one shift, in process: caretime's ASGI app called directly
(no server, no sockets) by 64 concurrent callers, on PostgreSQL. What a wrk run cannot show
on a shared machine: the process's CPU time per reply and the statements per reply, which
do not move with the load. (bench/replies.py is the same burst through a real server.)

    .venv/bin/python bench/replies_asgi.py [rounds]

Each round is a fresh database: 1,000 caregivers (BENCH_REPLIES) offered one shift, each
replying "yes" once, from 64 tasks (BENCH_REPLY_CONNECTIONS); then, on the same database,
300 "no" replies (BENCH_NO_REPLIES) from one caregiver with a `shift_id` hint, from 16 tasks
(what bench/api.py sends). Printed per round: CPU per reply, statements per reply (BEGIN
and COMMIT counted apart), wall time, p50/p99 of the in-process latency; then the same
"yes" burst answered by bench/replies.py's bare twin (one conditional UPDATE), in process
on the same database, and "yes / twin by CPU": the share of the twin's throughput a server
would reach if CPU were all that mattered (the process's CPU plus its PostgreSQL
backends'). BENCH_PROFILE=1 writes a cProfile of the yes-burst of the last round to
/tmp/replies_asgi.prof.
BENCH_PATH=desk hands the replies straight to the reply desk (no HTTP, no key check: the
desk's own cost). BENCH_ANALYZE=0 skips the ANALYZE before the burst (a fan-out a moment
old, before autovacuum has analysed its tables). A warm-up of 256 strangers' replies opens
the pool's connections first.

To compare with another checkout's code: `PYTHONPATH=/path/to/its/src`.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select, text

sys.path.insert(0, str(Path(__file__).parent))
import _asgi
import caretime
from _harness import postgres_database
from caretime import migrate
from caretime.app import create_app
from caretime.config import Settings
from caretime.messaging import Message, inbound
from caretime.messaging.desk import reply_desk
from caretime.runtime import Runtime
from caretime.shifts.models import Shift
from caretime.tenancy.models import Tenant
from outreach import cpu_seconds
from replies import KEY, SHIFT_ID, create_twin_table, phone, seed, twin_app

REPLIES = int(os.environ.get("BENCH_REPLIES", "1000"))
CONNECTIONS = int(os.environ.get("BENCH_REPLY_CONNECTIONS", "64"))
NO_REPLIES = int(os.environ.get("BENCH_NO_REPLIES", "300"))
NO_CONNECTIONS = int(os.environ.get("BENCH_NO_CONNECTIONS", "16"))
WARM_UP = 256
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
# 0: no ANALYZE before the burst (a fan-out a moment old, before autovacuum analyses it).
ANALYZE = os.environ.get("BENCH_ANALYZE", "1") == "1"
# "api": POST /messages/inbound through the app; "desk": straight to the reply desk.
PATH = os.environ.get("BENCH_PATH", "api")


class Statements:
    """Counts what the process sends to the database, by kind; finds the database's
    backends (the PostgreSQL processes whose CPU a burst costs)."""

    def __init__(self, *engines: Any) -> None:
        self.counts: Counter[str] = Counter()
        self._engine = engines[0]
        for engine in {engine.sync_engine for engine in engines}:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "begin", self._begin)
            event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.counts[statement.split(None, 1)[0].upper()] += 1

    def _begin(self, conn: Any) -> None:
        self.counts["BEGIN"] += 1

    def _commit(self, conn: Any) -> None:
        self.counts["COMMIT"] += 1

    def take(self) -> Counter[str]:
        taken, self.counts = self.counts, Counter()
        return taken

    async def backends(self) -> list[int]:
        """The database's backends (the pool's connections, opened by the warm-up)."""
        async with self._engine.connect() as connection:
            # Its own backend too: the pool hands this connection to the app next.
            sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            pids = await connection.scalars(text(sql))
            return list(pids)


@dataclass
class Burst:
    replies: int
    cpu: float
    wall: float
    latencies: list[float]
    statements: Counter[str]
    actions: Counter[str]
    # PostgreSQL's CPU for the burst: the database's backends open at its start (the
    # pool's, opened by the warm-up; a connection opened or closed during it is missed).
    database_cpu: float

    @property
    def cpu_per_reply(self) -> float:
        """Both sides' CPU per reply, the process's and PostgreSQL's (on this machine's two
        cores, what a server's throughput follows)."""
        return (self.cpu + self.database_cpu) / self.replies

    def line(self, name: str) -> str:
        per = self.replies
        lat = sorted(self.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        sql = sum(n for kind, n in self.statements.items() if kind not in ("BEGIN", "COMMIT"))
        txn = self.statements["COMMIT"]
        return (
            f"  {name:4} {self.cpu / per * 1e3:6.2f} ms CPU/reply "
            f"(+{self.database_cpu / per * 1e3:4.2f} PostgreSQL)  {sql / per:5.2f} statements"
            f"/reply (+{txn / per:4.2f} transactions)  {per / self.wall:6.0f}/s wall  "
            f"p50 {statistics.median(lat) * 1e3:6.1f} ms  p99 {p99 * 1e3:6.1f} ms  "
            f"{dict(self.actions)}"
        )


async def call(app: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode()
    status, answer = await _asgi.call(app, _asgi.scope("POST", path, key=KEY, body=raw), raw)
    return status, json.loads(answer or b"{}")


async def call_desk(app: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The reply handed to the desk as the endpoint hands it, without HTTP or the key check."""
    runtime: Runtime = app.state.runtime
    received = inbound.Inbound(
        from_phone=body["from"],
        body=body["body"],
        hint={"shift_id": body["shift_id"]} if "shift_id" in body else {},
    )
    tenant_id = runtime.services["bench.tenant_id"]
    answer = await reply_desk(runtime).receive(tenant_id, received, now=runtime.clock.now())
    return 200, answer


async def burst(
    app: Any,
    statements: Statements,
    bodies: list[dict[str, Any]],
    connections: int,
    call: Any = None,
) -> Burst:
    queue = list(reversed(bodies))
    latencies: list[float] = []
    actions: Counter[str] = Counter()

    async def connection() -> None:
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            status, answer = await (call or CALL)(app, "/messages/inbound", body)
            latencies.append(time.perf_counter() - started)
            assert status == 200, answer
            actions[answer["action"]] += 1

    backends = {pid: cpu_seconds([pid]) for pid in await statements.backends()}
    statements.take()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    # Backends present at the start and still there (one closed meanwhile reads as 0).
    database = sum(max(0.0, cpu_seconds([pid]) - used) for pid, used in backends.items())
    return Burst(len(bodies), cpu, wall, latencies, statements.take(), actions, database)


async def offer(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://b", headers=headers) as http:
        start = datetime.now(UTC) + timedelta(hours=6)
        shift = {
            "id": SHIFT_ID, "role_required": "RN", "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=8)).isoformat(),
        }  # fmt: skip
        policy = {"shifts": {"quiet_hours": {"start": "00:00", "end": "00:00"}}}
        assert (await http.patch("/tenants/me/policy", json=policy)).status_code == 200
        assert (await http.post("/shifts", json=shift)).status_code == 201
        offered = await http.post(f"/shifts/{SHIFT_ID}/fanout")
        assert offered.json()["offers"] == REPLIES, offered.text


async def analyze(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE"))


async def twin_burst(url: str) -> Burst:
    """The same "yes" burst answered by bench/replies.py's bare twin (one conditional UPDATE
    each), in process on the same database, after a warm-up as caretime's."""
    await create_twin_table(url)
    twin = twin_app(url)
    engine = twin.state.engine
    statements = Statements(engine)
    reopen = text("UPDATE bench_twin_shifts SET status = 'open', assigned = NULL")
    strangers = [{"from": f"+1617555{n:04d}", "body": "hello"} for n in range(WARM_UP)]
    await burst(twin, statements, strangers, CONNECTIONS, call=call)
    async with engine.begin() as connection:
        await connection.execute(reopen)
    yes = [{"from": phone(n), "body": "yes"} for n in range(REPLIES)]
    result = await burst(twin, statements, yes, CONNECTIONS, call=call)
    await engine.dispose()
    assert result.actions["assigned"] == 1, result.actions
    return result


async def one_round(url: str, profile: cProfile.Profile | None) -> tuple[Burst, Burst]:
    runtime = Runtime.build(Settings(database_url=url, api_key=KEY, workers=0))
    await migrate.upgrade(runtime.engine)
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        await seed(url)
        await offer(app)
        if ANALYZE:
            await analyze(runtime)  # as bench/replies.py does before its burst
        # The reader is the same engine with other options (its statements reach the
        # engine's listeners too).
        statements = Statements(runtime.engine)
        async with runtime.sessions() as session:
            runtime.services["bench.tenant_id"] = await _tenant(session)
        # Warm-up: every pooled connection opened and its statements prepared, as in a
        # server that has been up a while (strangers' replies: "unmatched", nothing changes).
        strangers = [{"from": f"+1617555{n:04d}", "body": "hello"} for n in range(WARM_UP)]
        await burst(app, statements, strangers, CONNECTIONS)
        yes = [{"from": phone(n), "body": "yes"} for n in range(REPLIES)]
        if profile:
            profile.enable()
        yes_burst = burst(app, statements, yes, CONNECTIONS)
        yes_result = await yes_burst
        if profile:
            profile.disable()
        no = [{"from": phone(7), "body": "no", "shift_id": SHIFT_ID}] * NO_REPLIES
        no_result = await burst(app, statements, no, NO_CONNECTIONS)
        async with runtime.sessions() as session:
            shift = await session.get(Shift, (await _tenant(session), SHIFT_ID))
            assert shift is not None
            assert shift.status == "filled"
            inbound = Message.direction == "inbound"
            recorded = await session.scalar(select(func.count()).where(inbound))
            assert recorded == WARM_UP + REPLIES + NO_REPLIES, recorded
        assert yes_result.actions["assigned"] == 1, yes_result.actions
    return yes_result, no_result


async def _tenant(session: Any) -> str:
    tenant_id: str = await session.scalar(select(Tenant.id).where(Tenant.name == "default"))
    return tenant_id


CALL = call_desk if PATH == "desk" else call


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    code = Path(caretime.__file__).parent
    print(f"path: {PATH}; code: {code}; load average {os.getloadavg()[0]:.2f}")
    for n in range(rounds):
        profile = cProfile.Profile(time.process_time) if PROFILE and n == rounds - 1 else None
        with postgres_database("caretime_bench_replies_asgi") as url:
            yes, no = asyncio.run(one_round(url, profile))
            twin = asyncio.run(twin_burst(url))
        print(yes.line("yes"))
        if NO_REPLIES:
            print(no.line("no"))
        print(twin.line("twin"))
        # The share of the twin's throughput a server would reach if CPU (the process's
        # and PostgreSQL's, on this machine's two cores) were all that mattered.
        print(f"  yes / twin by CPU: {twin.cpu_per_reply / yes.cpu_per_reply:.2f}")
        if profile:
            profile.dump_stats("/tmp/replies_asgi.prof")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
