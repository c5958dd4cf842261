"""What a single API request costs beside the framework's own ceiling, measured with `wrk`.

In one run, on SQLite and then on PostgreSQL, `caretime serve` (no workers) and the bare
FastAPI twins of `bench/bare_app.py` (same uvicorn settings, same database) take the same
closed-loop load, one endpoint at a time, in pairs of runs back to back:

| caretime | bare twin |
|---|---|
| `GET /health` | `GET /health` |
| authenticated `GET /tenants/me` | one indexed SELECT |
| `GET /calls/{id}` | one indexed SELECT |
| `GET /slots` for one provider-day | one indexed SELECT |
| `POST /reservations` (a distinct free slot each) | one INSERT |
| `POST /messages/inbound` (a "no" to an offer) | one conditional UPDATE |

It prints requests/s, p50 and p99, and each ratio to its twin with its target. After the
reservations it counts double bookings in the database (there must be none).

Variables: `CARETIME_BENCH_SECONDS` (per measurement, default 3), `CARETIME_BENCH_CONNECTIONS`
(default 16), `CARETIME_BENCH_ROUNDS` (twin/caretime pairs per endpoint, default 3; the pair
with the median ratio is printed), `CARETIME_BENCH_DATABASES` (`sqlite,postgresql`),
`CARETIME_BENCH_PROFILE=1` (py-spy samples the caretime server during each measurement and
prints its top frames; needs py-spy, a dev dependency), `CARETIME_BENCH_POSTGRES_URL`.
`wrk` is installed with apt-get when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).parent))
import _profile
import _wrk
from _harness import caretime_server, free_port, postgres_database, server_pid, wait_until_up

KEY = "ct_bench_api_key_0123456789"
SECONDS = float(os.environ.get("CARETIME_BENCH_SECONDS", "3"))
CONNECTIONS = int(os.environ.get("CARETIME_BENCH_CONNECTIONS", "16"))
ROUNDS = int(os.environ.get("CARETIME_BENCH_ROUNDS", "3"))
DATABASES = os.environ.get("CARETIME_BENCH_DATABASES", "sqlite,postgresql").split(",")
PROFILE = os.environ.get("CARETIME_BENCH_PROFILE") == "1"
# Comma-separated parts of endpoint names to run (e.g. "slots,calls"); empty runs them all.
ENDPOINTS = [part for part in os.environ.get("CARETIME_BENCH_ENDPOINTS", "").split(",") if part]
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
# Reservations spread over this many providers, each open round the clock (96 slots a day)
# for as many days as the rounds need: each round books from its own range of slots, sized
# for 3,000 reservations a second, more than any run books.
RES_PROVIDERS = 50
SLOTS_PER_ROUND = max(10_000, int(SECONDS * 3_000))
RES_DAYS = -(-ROUNDS * SLOTS_PER_ROUND // (RES_PROVIDERS * 96))
CAREGIVER_PHONE = "+12065550123"
NO_QUIET_HOURS = {"shifts": {"quiet_hours": {"start": "00:00", "end": "00:00"}}}


@dataclass(frozen=True)
class Pair:
    name: str
    ours: _wrk.Load
    twin: _wrk.Load
    target: float


@dataclass(frozen=True)
class Fixture:
    call_id: str
    slots_day: str
    shift_id: str
    first_slot: datetime


def pairs(fixture: Fixture) -> list[Pair]:
    select_twin = _wrk.Load(f"/select/{fixture.call_id}")
    first = int(fixture.first_slot.timestamp())
    slot = f"os.date('!%Y-%m-%dT%H:%M:%SZ', {first} + math.floor(i / {RES_PROVIDERS}) * 900)"
    reservation = (
        '\'{"provider_id": "res-\' .. (i % '
        f'{RES_PROVIDERS}) .. \'", "slot_start": "\' .. {slot} .. '
        '\'", "client_id": "patient-\' .. i .. \'"}\''
    )
    twin_reservation = reservation
    no = f'{{"from": "{CAREGIVER_PHONE}", "body": "no", "shift_id": "{fixture.shift_id}"}}'
    day = fixture.slots_day
    return [
        Pair("GET /health", _wrk.Load("/health"), _wrk.Load("/health"), 0.9),
        Pair("GET /tenants/me", _wrk.Load("/tenants/me", headers=AUTH), select_twin, 0.8),
        Pair(
            "GET /calls/{id}",
            _wrk.Load(f"/calls/{fixture.call_id}", headers=AUTH),
            select_twin,
            0.8,
        ),
        Pair(
            "GET /slots (1 day)",
            _wrk.Load(
                f"/slots?provider_id=slots-1&start={day}T00:00:00Z&end={day}T23:59:59Z",
                headers=AUTH,
            ),
            select_twin,
            0.8,
        ),
        Pair(
            "POST /reservations",
            _wrk.Load("/reservations", "POST", {**AUTH, **JSON}, lua_body=reservation),
            _wrk.Load("/insert", "POST", JSON, lua_body=twin_reservation.replace("res-", "bare-")),
            0.7,
        ),
        Pair(
            "POST /messages/inbound (no)",
            _wrk.Load("/messages/inbound", "POST", {**AUTH, **JSON}, body=no),
            _wrk.Load("/update", "POST", JSON, body=no),
            0.7,
        ),
    ]


def chosen(all_pairs: list[Pair]) -> list[Pair]:
    return [pair for pair in all_pairs if not ENDPOINTS or any(p in pair.name for p in ENDPOINTS)]


def seed(url: str) -> Fixture:
    """The rows the measured requests read and write, made through the API."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
        ok(http.patch("/tenants/me/policy", json=NO_QUIET_HOURS))
        call = ok(http.post("/calls", json={"name": "Bench Patient", "phone": "+12065550100"}))
        first_day = (datetime.now(UTC) + timedelta(days=3)).date()
        ok(http.post("/providers", json={"id": "slots-1", "name": "Slots", "tz": "UTC"}))
        window = {"date": first_day.isoformat(), "start": "08:00", "end": "17:00"}
        ok(http.post("/providers/slots-1/availability", json=window))
        for n in range(RES_PROVIDERS):
            ok(http.post("/providers", json={"id": f"res-{n}", "name": f"R{n}", "tz": "UTC"}))
            days = [
                {
                    "date": (first_day + timedelta(days=d)).isoformat(),
                    "start": "00:00",
                    "end": "23:45",
                }
                for d in range(RES_DAYS)
            ]
            ok(http.post(f"/providers/res-{n}/availability", json=days))
        shift_id = seed_offer(http, first_day)
    first_slot = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    return Fixture(call["id"], first_day.isoformat(), shift_id, first_slot)


def seed_offer(http: httpx.Client, day: object) -> str:
    caregiver = {"id": "cg-1", "name": "Bench RN", "phone": CAREGIVER_PHONE, "roles": ["RN"]}
    ok(http.post("/caregivers", json=caregiver))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    shift = {
        "id": "shift-1",
        "role_required": "RN",
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": (start + timedelta(hours=8)).isoformat().replace("+00:00", "Z"),
    }
    ok(http.post("/shifts", json=shift))
    ok(http.post("/shifts/shift-1/fanout"))
    reply = {"from": CAREGIVER_PHONE, "body": "no", "shift_id": "shift-1"}
    answer = ok(http.post("/messages/inbound", json=reply))
    if answer.get("action") != "declined":
        raise RuntimeError(f"the seeded offer did not decline: {answer}")
    return "shift-1"


def ok(response: httpx.Response) -> dict[str, object]:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:300]}")  # fmt: skip
    body: dict[str, object] = response.json() if response.content else {}
    return body


async def seed_twin(database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO bare_offers (phone, shift_id, status) VALUES (:p, 'shift-1', 'open')"
            ),
            {"p": CAREGIVER_PHONE},
        )
    await engine.dispose()


async def double_bookings(database_url: str) -> tuple[int, int]:
    """(appointments held, slots holding more than one active appointment)."""
    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        held = await connection.scalar(text("SELECT count(*) FROM appointments"))
        doubled = await connection.scalar(
            text(
                "SELECT count(*) FROM (SELECT provider_id, slot_start FROM appointments "
                "WHERE status IN ('held', 'confirmed') GROUP BY tenant_id, provider_id, "
                "slot_start HAVING count(*) > 1) AS doubled"
            )
        )
    await engine.dispose()
    return int(held or 0), int(doubled or 0)


@contextlib.contextmanager
def bare_server(database_url: str) -> Iterator[str]:
    """The twins under uvicorn with caretime serve's settings (uvloop, httptools, no access
    log, one process)."""
    port = free_port()
    env = {**os.environ, "BARE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port)]
    command += ["--app-dir", str(Path(__file__).parent), "--no-access-log"]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(pair: Pair, ours_url: str, twin_url: str, server_pid: int) -> Measured:
    """ROUNDS pairs of runs, the twin and caretime back to back (in turns first, so a load
    that rises or falls through the pair favours neither); the pair with the median ratio
    is the figure (the machine is shared: a single pair can fall in someone's test run)."""
    pairs: list[Measured] = []
    for round_number in range(ROUNDS):
        first = round_number * SLOTS_PER_ROUND
        runs = {}
        for side in ("twin", "ours") if round_number % 2 == 0 else ("ours", "twin"):
            url, load = (twin_url, pair.twin) if side == "twin" else (ours_url, pair.ours)
            with _profile.sampling(server_pid, enabled=PROFILE and side == "ours") as profile:
                runs[side] = _wrk.run(
                    url, load, seconds=SECONDS, connections=CONNECTIONS, first=first
                )
            if side == "ours" and PROFILE:
                print(profile.top(pair.name))
        pairs.append(Measured(runs["ours"], runs["twin"]))
    pairs.sort(key=lambda measured: measured.ratio)
    return pairs[len(pairs) // 2]


@dataclass(frozen=True)
class Measured:
    ours: _wrk.WrkResult
    twin: _wrk.WrkResult

    @property
    def ratio(self) -> float:
        return self.ours.per_second / self.twin.per_second if self.twin.per_second else 0.0


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_database(label: str, database_url: str) -> list[str]:
    # The log level caretime ships with: every request writes its JSON log line (to nowhere).
    env = {"CARETIME_DATABASE_URL": database_url, "CARETIME_API_KEY": KEY}
    env["CARETIME_LOG_LEVEL"] = "INFO"
    lines: list[str] = []
    with caretime_server(env) as ours_url:
        fixture = seed(ours_url)
        with bare_server(database_url) as twin_url:
            asyncio.run(seed_twin(database_url))
            pid = server_pid(ours_url)
            print(f"{label} (load average {load_average()}):", flush=True)
            for pair in chosen(pairs(fixture)):
                measured = measure(pair, ours_url, twin_url, pid)
                ours, twin, ratio = measured.ours, measured.twin, measured.ratio
                verdict = "ok" if ratio >= pair.target else "BELOW TARGET"
                print(f"  {pair.name:28} caretime {ours.summary()}")
                print(f"  {'':28} bare     {twin.summary()}")
                line = f"{pair.name}: {ratio:.2f}× (target ≥ {pair.target}×, {verdict})"
                print(f"  {'':28} ratio {ratio:.2f}× (target ≥ {pair.target}×: {verdict})")
                lines.append(f"{label} {line}")
            held, doubled = asyncio.run(double_bookings(database_url))
            print(f"  reservations held: {held}, double bookings: {doubled}", flush=True)
            lines.append(f"{label} double bookings: {doubled} of {held} held")
    return lines


def main() -> None:
    _wrk.ensure_wrk()
    print(f"{SECONDS:g} s per measurement, {CONNECTIONS} connections, {ROUNDS} round(s)")
    summary: list[str] = []
    if "sqlite" in DATABASES:
        path = Path("var/bench-api.db").resolve()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        summary += run_database("SQLite", f"sqlite+aiosqlite:///{path}")
    if "postgresql" in DATABASES:
        with postgres_database("caretime_bench_api") as pg_url:
            summary += run_database("PostgreSQL", pg_url)
    print(f"\nSummary (load average at the end {load_average()}):")
    for line in summary:
        print(f"  {line}")


if __name__ == "__main__":
    main()
