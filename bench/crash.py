"""Crash and count: SIGKILL caretime in the middle of its work, restart it, and count what
reached the provider, what was lost and what happened twice (docs/reliability.md).

On a fresh PostgreSQL database, with the Twilio provider pointed at a Twilio-compatible fake
on loopback that logs every request (`tests/fakes/twilio_server.py`, optionally slow), it
runs `caretime serve` (one in-process worker) and a separate `caretime worker`. Each cycle
starts a shift fan-out to 300 caregivers, places calls and takes appointment holds, then
SIGKILLs the server or the worker (chosen at random) at a random moment, restarts it, and
waits for the fan-out to be handed over. At the end it counts: provider requests per offer,
duplicates against the requests in flight at each kill, lost offers, jobs run more than once
or dead-lettered, holds that never expired and calls never placed.

    .venv/bin/python bench/crash.py [--cycles 20] [--lease 30] [--delay 0.02] [--seed 1]

Bounded: each wait has a limit, the whole run stops by itself. Traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(REPO))
from tests.fakes.support import fake_twilio  # noqa: E402

from _harness import CARETIME, free_port, postgres_database  # noqa: E402

KEY = "ct_crash_harness_key"
CAREGIVERS = 300
CALLS_PER_CYCLE = 3
HOLDS_PER_CYCLE = 3
HOLD_SECONDS = 60  # the shortest hold booking policy accepts (1 minute)
SETTLE_SECONDS = 10  # the target: a fan-out complete within lease + this after a restart


def caregiver_phone(n: int) -> str:
    return f"+1206{3000000 + n:07d}"


def call_phone(cycle: int, n: int) -> str:
    # Sydney numbers: their legal calling hours overlap the harness's run at any UTC time
    # far more than one US zone's do (the tenant's windows are opened to the whole day).
    return f"+61291{cycle + 1:03d}{n:03d}"


@dataclass
class Service:
    """`caretime serve` or `caretime worker`, killed and restarted by the harness."""

    name: str
    args: list[str]
    env: dict[str, str]
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [CARETIME, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Cycle:
    number: int
    shift_id: str
    victim: str = ""
    killed_after: float = 0.0
    in_flight: int = 0  # messages marked in flight, outcome not committed, right after the kill
    complete_after_restart: float | None = None  # None: not within the bound
    requests: int = 0
    duplicates: int = 0


@dataclass
class Harness:
    url: str
    engine: AsyncEngine
    server: Service
    worker: Service
    lease: float
    rng: random.Random
    cycles: list[Cycle] = field(default_factory=list)

    @property
    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        )

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), params)).scalar()

    def wait_for_server(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not come back within 90 s")

    def set_up(self) -> None:
        policy = {
            "booking": {"hold": f"{HOLD_SECONDS}s", "min_notice": "0s"},
            # Any hour of the day: caregivers' quiet hours off (start = end means none).
            "shifts": {
                "escalation": [{"channel": "sms", "after": "0s"}],
                "quiet_hours": {"start": "00:00", "end": "00:00"},
            },
            "calling": {
                "windows": {
                    day: [{"start": "00:00", "end": "23:59"}]
                    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                },
                "skip_holidays": False,
            },
        }
        with self.http as http:
            http.patch("/tenants/me/policy", json=policy).raise_for_status()
            http.put("/tenants/me/numbers", json={"numbers": ["+12065550199"]}).raise_for_status()
            for n in range(CAREGIVERS):
                caregiver = {"id": f"cg-{n}", "name": f"RN {n}", "phone": caregiver_phone(n)}
                http.post("/caregivers", json={**caregiver, "roles": ["RN"]}).raise_for_status()
            http.post("/providers", json={"id": "dr-1", "name": "Dr One", "tz": "UTC"})
            today = datetime.now(UTC).date()
            windows = [
                {"date": (today + timedelta(days=d)).isoformat(), "start": "00:00", "end": "23:45"}
                for d in range(1, 8)
            ]
            http.post("/providers/dr-1/availability", json=windows).raise_for_status()

    def start_work(self, cycle: Cycle) -> None:
        start = datetime.now(UTC) + timedelta(days=3, hours=cycle.number)
        shift = {
            "id": cycle.shift_id,
            "role_required": "RN",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=8)).isoformat(),
        }
        with self.http as http:
            http.post("/shifts", json=shift).raise_for_status()
            http.post(f"/shifts/{cycle.shift_id}/fanout").raise_for_status()
            for n in range(CALLS_PER_CYCLE):
                call = {"name": f"Patient {cycle.number}-{n}", "phone": call_phone(cycle.number, n)}
                http.post("/calls", json=call).raise_for_status()
            self.hold_slots(http, cycle)

    def hold_slots(self, http: httpx.Client, cycle: Cycle) -> None:
        day = datetime.now(UTC).date() + timedelta(days=1 + cycle.number % 7)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        found = http.get(
            "/slots",
            params={
                "provider_id": "dr-1",
                "start": start.isoformat(),
                "end": (start + timedelta(days=1)).isoformat(),
            },
        )
        found.raise_for_status()
        slots = found.json()
        slots = slots.get("slots", slots) if isinstance(slots, dict) else slots
        for n, slot in enumerate(slots[cycle.number * HOLDS_PER_CYCLE :][:HOLDS_PER_CYCLE]):
            slot_start = slot["start"] if isinstance(slot, dict) else slot
            reservation = {"provider_id": "dr-1", "slot_start": slot_start, "client_id": f"c{n}"}
            http.post("/reservations", json=reservation).raise_for_status()

    async def run_cycle(self, cycle: Cycle) -> None:
        self.start_work(cycle)
        cycle.killed_after = self.rng.uniform(0.05, 1.5)
        await asyncio.sleep(cycle.killed_after)
        victim = self.rng.choice([self.server, self.worker])
        cycle.victim = victim.name
        victim.kill()
        cycle.in_flight = int(
            await self.scalar(
                "SELECT count(*) FROM messages WHERE handover_started_at IS NOT NULL "
                "AND provider_id IS NULL AND status = 'queued'"
            )
        )
        victim.start()
        restarted = time.monotonic()
        bound = self.lease + 60
        while time.monotonic() - restarted < bound:
            if await self.unsent(cycle.shift_id) == 0:
                cycle.complete_after_restart = time.monotonic() - restarted
                break
            await asyncio.sleep(0.2)
        self.wait_for_server()  # before the next cycle's requests

    async def baseline(self) -> float:
        """The normal hand-over time: a fan-out with nobody killed, from the POST to the last
        offer handed over."""
        cycle = Cycle(-1, "crash-baseline", victim="none")
        started = time.monotonic()
        self.start_work(cycle)
        while await self.unsent(cycle.shift_id):  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def unsent(self, shift_id: str) -> int:
        return int(
            await self.scalar(
                "SELECT count(*) FROM messages WHERE idempotency_key LIKE :key "
                "AND provider_id IS NULL AND status = 'queued'",
                key=f"shift:{shift_id}:%",
            )
        )


async def count(harness: Harness, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The final figures, from the fake's log and the database."""
    sms = Counter((r["to"], r["body"]) for r in requests if r["kind"] == "sms")
    calls = Counter(r["to"] for r in requests if r["kind"] == "voice")
    async with harness.engine.connect() as connection:
        offers = (
            await connection.execute(
                text(
                    "SELECT idempotency_key, to_phone, body, provider_id, status, in_doubt "
                    "FROM messages WHERE idempotency_key LIKE 'shift:%'"
                )
            )
        ).all()
        jobs = dict(
            (
                await connection.execute(
                    text(
                        "SELECT 'rerun', count(*) FROM jobs WHERE attempts > 1 UNION ALL "
                        "SELECT 'failed', count(*) FROM jobs WHERE status = 'failed' UNION ALL "
                        "SELECT 'live', count(*) FROM jobs WHERE status IN ('queued', 'running') "
                        "AND run_at < now()"
                    )
                )
            ).all()
        )
        stale_holds = await connection.scalar(
            text(
                "SELECT count(*) FROM appointments WHERE status = 'held' "
                "AND hold_expires_at < now() - make_interval(secs => :grace)"
            ),
            {"grace": harness.lease + SETTLE_SECONDS},
        )
        call_rows = (await connection.execute(text("SELECT phone_e164, status FROM calls"))).all()
    for cycle in harness.cycles:
        mine = [o for o in offers if o.idempotency_key.startswith(f"shift:{cycle.shift_id}:")]
        cycle.requests = sum(sms[(o.to_phone, o.body)] for o in mine)
        cycle.duplicates = cycle.requests - sum(1 for o in mine if sms[(o.to_phone, o.body)])
    per_offer = Counter(sms[(o.to_phone, o.body)] for o in offers)
    lost = sum(1 for o in offers if o.provider_id is None and o.status == "queued")
    return {
        "offers": len(offers),
        "requests_per_offer": dict(sorted(per_offer.items())),
        "lost_offers": lost,
        "in_doubt": sum(1 for o in offers if o.in_doubt),
        "jobs_rerun": jobs.get("rerun", 0),
        "jobs_failed": jobs.get("failed", 0),
        "jobs_overdue_at_end": jobs.get("live", 0),
        "holds_never_expired": int(stale_holds or 0),
        "calls": len(call_rows),
        "calls_never_placed": sum(1 for phone, _ in call_rows if calls[phone] == 0),
        "calls_placed_twice": sum(1 for phone, _ in call_rows if calls[phone] > 1),
        "call_statuses": dict(Counter(status for _, status in call_rows)),
    }


def report(harness: Harness, totals: dict[str, Any]) -> None:
    print(
        f"{'cycle':>5} {'killed':>7} {'after s':>7} {'in flight':>9} {'requests':>8} "
        f"{'dupes':>5} {'complete s':>10}"
    )
    for c in harness.cycles:
        done = "-" if c.complete_after_restart is None else f"{c.complete_after_restart:.1f}"
        print(
            f"{c.number:>5} {c.victim:>7} {c.killed_after:>7.2f} {c.in_flight:>9} "
            f"{c.requests:>8} {c.duplicates:>5} {done:>10}"
        )
    ok = [c for c in harness.cycles if c.duplicates <= c.in_flight]
    bound = harness.lease + SETTLE_SECONDS
    on_time = [
        c
        for c in harness.cycles
        if c.complete_after_restart is not None and c.complete_after_restart <= bound
    ]
    print(json.dumps(totals, indent=2))
    print(f"duplicates <= in flight at the kill: {len(ok)}/{len(harness.cycles)} cycles")
    print(
        f"fan-out complete within lease + {SETTLE_SECONDS} s ({bound:.0f} s) of the restart: "
        f"{len(on_time)}/{len(harness.cycles)} cycles"
    )


@contextmanager
def services(
    database_url: str, twilio_env: dict[str, str], lease: float, logs: Path
) -> Iterator[Harness]:
    port = free_port()
    env = {
        **os.environ,
        **twilio_env,
        "CARETIME_DATABASE_URL": database_url,
        "CARETIME_API_KEY": KEY,
        "CARETIME_JOB_LEASE_SECONDS": str(lease),
        "CARETIME_LOG_LEVEL": "INFO",
        "CARETIME_WORKERS": "1",
        "CARETIME_TWILIO_RATE_LIMIT": "500",
    }
    subprocess.run([CARETIME, "migrate"], env=env, check=True, capture_output=True)
    server = Service("server", ["serve", "--port", str(port)], env, logs)
    worker = Service("worker", ["worker", "--concurrency", "8"], env, logs)
    engine = create_async_engine(database_url)
    harness = Harness(f"http://127.0.0.1:{port}", engine, server, worker, lease, random.Random())
    try:
        server.start()
        harness.wait_for_server()
        worker.start()
        yield harness
    finally:
        worker.stop()
        server.stop()


async def run(args: argparse.Namespace, harness: Harness, twilio: Any) -> None:
    harness.rng.seed(args.seed)
    harness.set_up()
    baseline = await harness.baseline()
    print(f"baseline: a fan-out to {CAREGIVERS} handed over in {baseline:.2f} s", flush=True)
    for number in range(args.cycles):
        cycle = Cycle(number, f"crash-{number}")
        harness.cycles.append(cycle)
        await harness.run_cycle(cycle)
        print(
            f"cycle {number}: killed the {cycle.victim} after {cycle.killed_after:.2f} s, "
            f"complete {cycle.complete_after_restart} s after the restart",
            flush=True,
        )
    await asyncio.sleep(HOLD_SECONDS + args.lease + SETTLE_SECONDS)  # holds and calls settle
    totals = await count(harness, twilio.requests())
    await harness.engine.dispose()
    report(harness, totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--delay", type=float, default=0.02, help="fake provider seconds/request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=REPO / "var" / "crash")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: the processes and the database go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with (
        postgres_database("crash") as database_url,
        fake_twilio(args.logs, delay=args.delay) as twilio,
        services(database_url, twilio.env(), args.lease, args.logs) as harness,
    ):
        asyncio.run(run(args, harness, twilio))


if __name__ == "__main__":
    main()
