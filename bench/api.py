"""What a single API request costs beside the framework's own ceiling, measured with `wrk`.

In one run, on SQLite and on PostgreSQL, `caretime serve` (no workers) and the bare FastAPI
twins of `bench/bare_app.py` (same uvicorn settings, same database) take the same closed-loop
load, one endpoint at a time:

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

A ratio compares two runs, so a load on the machine that moves between them moves the ratio
(the machine is shared): both databases' servers run from the start, and each round of an
endpoint measures both databases, in turns first (SQLite then PostgreSQL, then the other
way); within a database, the twin and caretime run in halves, twin-caretime-caretime-twin or
its mirror, so a load that rises or falls through the pair weighs on both sides alike. A
side's figure adds its two halves (requests over seconds; p50/p99 the mean of the halves'
weighted by their requests).

Variables: `CARETIME_BENCH_SECONDS` (per side of a pair, default 3, run as two halves of
whole seconds), `CARETIME_BENCH_CONNECTIONS` (default 16), `CARETIME_BENCH_ROUNDS`
(twin/caretime pairs per endpoint and database, default 3; the pair with the median ratio
is printed), `CARETIME_BENCH_DATABASES` (`sqlite,postgresql`), `CARETIME_BENCH_ENDPOINTS`
(parts of endpoint names, e.g. `slots,calls`; empty runs them all),
`CARETIME_BENCH_PROFILE=1` (py-spy samples the caretime server during its first half of each
pair and prints its top frames; needs py-spy, a dev dependency), `CARETIME_BENCH_POSTGRES_URL`.
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

from caretime.serving import UVICORN_HTTP, UVICORN_LOOP

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
# Each side of a pair runs in two halves of this many seconds (wrk counts whole seconds).
HALF_SECONDS = max(1, round(SECONDS / 2))
# Reservations spread over this many providers, each open round the clock (96 slots a day)
# for as many days as the runs need: each run (a half of a side of a round) books from its
# own range of slots, sized for 3,000 reservations a second, more than any run books.
RES_PROVIDERS = 50
SLOTS_PER_RUN = max(10_000, HALF_SECONDS * 3_000)
RES_DAYS = -(-ROUNDS * 2 * SLOTS_PER_RUN // (RES_PROVIDERS * 96))
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
    return Fixture(str(call["id"]), first_day.isoformat(), shift_id, first_slot)


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
    """The twins under uvicorn with caretime serve's settings (serving.py: uvloop, httptools,
    no access log, no server header, one process)."""
    port = free_port()
    env = {**os.environ, "BARE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port)]
    command += ["--app-dir", str(Path(__file__).parent), "--no-access-log"]
    command += ["--loop", UVICORN_LOOP, "--http", UVICORN_HTTP, "--no-server-header"]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class Served:
    """One database's pair of servers, seeded."""

    label: str
    database_url: str
    ours_url: str
    twin_url: str
    server_pid: int
    fixture: Fixture


@contextlib.contextmanager
def served(label: str, database_url: str) -> Iterator[Served]:
    # The log level caretime ships with: every request writes its JSON log line (to nowhere).
    env = {"CARETIME_DATABASE_URL": database_url, "CARETIME_API_KEY": KEY}
    env["CARETIME_LOG_LEVEL"] = "INFO"
    with caretime_server(env) as ours_url:
        fixture = seed(ours_url)
        with bare_server(database_url) as twin_url:
            asyncio.run(seed_twin(database_url))
            pid = server_pid(ours_url)
            yield Served(label, database_url, ours_url, twin_url, pid, fixture)


def one_round(pair: Pair, at: Served, round_number: int) -> Measured:
    """Twin-caretime-caretime-twin (even rounds) or its mirror, each a half of a side."""
    first_side = "twin" if round_number % 2 == 0 else "ours"
    order = [first_side, other(first_side), other(first_side), first_side]
    halves: dict[str, list[_wrk.WrkResult]] = {"twin": [], "ours": []}
    for side in order:
        url, load = (at.twin_url, pair.twin) if side == "twin" else (at.ours_url, pair.ours)
        first = (round_number * 2 + len(halves[side])) * SLOTS_PER_RUN
        profiled = PROFILE and side == "ours" and not halves["ours"]
        with _profile.sampling(at.server_pid, enabled=profiled) as profile:
            halves[side].append(
                _wrk.run(url, load, seconds=HALF_SECONDS, connections=CONNECTIONS, first=first)
            )
        if profiled:
            print(profile.top(f"{pair.name} ({at.label})"))
    return Measured(_wrk.combined(halves["ours"]), _wrk.combined(halves["twin"]))


def other(side: str) -> str:
    return "ours" if side == "twin" else "twin"


def median_pair(measured: list[Measured]) -> Measured:
    """The pair with the median ratio (a single pair can fall in someone's test run)."""
    return sorted(measured, key=lambda pair: pair.ratio)[len(measured) // 2]


@dataclass(frozen=True)
class Measured:
    ours: _wrk.WrkResult
    twin: _wrk.WrkResult

    @property
    def ratio(self) -> float:
        return self.ours.per_second / self.twin.per_second if self.twin.per_second else 0.0


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def measure_all(servers: list[Served]) -> list[str]:
    """Every chosen endpoint, ROUNDS rounds each, the databases in turns first."""
    lines: list[str] = []
    names = [pair.name for pair in chosen(pairs(servers[0].fixture))]
    for name in names:
        rounds: dict[str, list[Measured]] = {at.label: [] for at in servers}
        for round_number in range(ROUNDS):
            for at in servers if round_number % 2 == 0 else servers[::-1]:
                pair = next(p for p in pairs(at.fixture) if p.name == name)
                rounds[at.label].append(one_round(pair, at, round_number))
        for at in servers:
            pair = next(p for p in pairs(at.fixture) if p.name == name)
            lines.append(report(pair, at.label, median_pair(rounds[at.label])))
    return lines


def report(pair: Pair, label: str, measured: Measured) -> str:
    ratio = measured.ratio
    verdict = "ok" if ratio >= pair.target else "BELOW TARGET"
    print(f"  {label:10} {pair.name:28} caretime {measured.ours.summary()}")
    print(f"  {'':10} {'':28} bare     {measured.twin.summary()}")
    print(f"  {'':10} {'':28} ratio {ratio:.2f}× (target ≥ {pair.target}×: {verdict})")
    return f"{label} {pair.name}: {ratio:.2f}× (target ≥ {pair.target}×, {verdict})"


def double_booking_lines(servers: list[Served]) -> list[str]:
    lines = []
    for at in servers:
        held, doubled = asyncio.run(double_bookings(at.database_url))
        print(f"  {at.label}: reservations held: {held}, double bookings: {doubled}")
        lines.append(f"{at.label} double bookings: {doubled} of {held} held")
    return lines


@contextlib.contextmanager
def databases() -> Iterator[list[tuple[str, str]]]:
    """(label, URL) of each chosen database, fresh."""
    chosen_databases: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack:
        if "sqlite" in DATABASES:
            path = Path("var/bench-api.db").resolve()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            chosen_databases.append(("SQLite", f"sqlite+aiosqlite:///{path}"))
        if "postgresql" in DATABASES:
            url = stack.enter_context(postgres_database("caretime_bench_api"))
            chosen_databases.append(("PostgreSQL", url))
        yield chosen_databases


def main() -> None:
    _wrk.ensure_wrk()
    print(
        f"{SECONDS:g} s per side (two halves of {HALF_SECONDS} s), {CONNECTIONS} connections, "
        f"{ROUNDS} round(s)"
    )
    with databases() as chosen_databases, contextlib.ExitStack() as stack:
        servers = [stack.enter_context(served(label, url)) for label, url in chosen_databases]
        print(f"load average {load_average()}:", flush=True)
        summary = measure_all(servers)
        summary += double_booking_lines(servers)
    print(f"\nSummary (load average at the end {load_average()}):")
    for line in summary:
        print(f"  {line}")


if __name__ == "__main__":
    main()
