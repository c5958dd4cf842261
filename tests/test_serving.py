"""`caretime serve --processes N`: real processes sharing one port, real HTTP, PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from caretime import serving
from caretime.config import Settings
from tests.conftest import Database
from tests.shifts.support import NO_QUIET_HOURS, phone
from tests.support import TEST_API_KEY, bearer
from tests.test_serve import CARETIME, WAIT, free_port

# Bounds on waiting, never assertions: spawning interpreters on a busy machine is slow.
STARTUP = 180.0
CLOSE = {"Connection": "close"}  # a new connection per request: the kernel picks a process
AT_ONCE = 16


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]


def serve_env(database: Database, *, workers: int) -> dict[str, str]:
    return {
        **os.environ,
        "CARETIME_DATABASE_URL": database.url,
        "CARETIME_API_KEY": TEST_API_KEY,
        "CARETIME_WORKERS": str(workers),
        "CARETIME_SHUTDOWN_GRACE_SECONDS": "5",
    }


@pytest.fixture
def serve_two(database: Database) -> Iterator[Callable[[int], Served]]:
    """Starts `caretime serve --processes 2` with CARETIME_WORKERS=n; stops it after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(workers: int) -> Served:
        env = serve_env(database, workers=workers)
        port = free_port()
        process = subprocess.Popen(
            [CARETIME, "serve", "--port", str(port), "--processes", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        return Served(process, f"http://127.0.0.1:{port}", env)

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=WAIT)


def readiness_by_process(served: Served, processes: int) -> dict[int, list[dict[str, Any]]]:
    """GET /health/ready until `processes` distinct processes answered: the readiness answers,
    by the PID that gave them. Requests go AT_ONCE at a time, each on a new connection: an
    idle process tends to win every accept, a busy one leaves it to another."""
    seen: dict[int, list[dict[str, Any]]] = defaultdict(list)
    deadline = time.monotonic() + STARTUP
    while len(seen) < processes and time.monotonic() < deadline:
        assert served.process.poll() is None, "caretime serve stopped"
        for checks in asyncio.run(_readiness_at_once(served.url)):
            seen[checks["process"]["detail"]["pid"]].append(checks)
    return seen


async def _readiness_at_once(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=CLOSE, timeout=WAIT) as http:
        replies = await asyncio.gather(
            *(http.get("/health/ready") for _ in range(AT_ONCE)), return_exceptions=True
        )
    # Before the port answers, connections are refused; those are asked again.
    return [r.json()["checks"] for r in replies if isinstance(r, httpx.Response)]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (its children, theirs...), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    below = {child for child, parent in parents.items() if parent == pid}
    return below.union(*(descendants(child) for child in below))


def wait_until_gone(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
        if not pids:
            break
        time.sleep(0.1)
    return pids


@pytest.mark.postgres_only
def test_two_processes_serve_one_port_and_stop_cleanly_on_sigterm(
    serve_two: Callable[[int], Served],
) -> None:
    two_processes = serve_two(1)
    answered = readiness_by_process(two_processes, 2)
    assert len(answered) == 2
    below = descendants(two_processes.process.pid)
    assert set(answered) <= below  # children of the parent, which itself serves nothing
    # Whichever process a scrape reaches, /metrics counts what both answered.
    both = sum(len(answers) for answers in answered.values())
    assert _readiness_requests_counted_eventually(two_processes.url, both) >= both
    _stop_and_expect_all_gone(two_processes, signal.SIGTERM)


@pytest.mark.postgres_only
def test_each_process_runs_workers_and_a_due_job_runs(
    serve_two: Callable[[int], Served],
) -> None:
    two_processes = serve_two(1)
    answered = readiness_by_process(two_processes, 2)
    assert len(answered) == 2
    assert _workers_alive_eventually(two_processes, 2) == 2
    _offer_a_shift(two_processes.url)
    assert _sms_received_eventually(two_processes.url, phone(1))


@pytest.mark.postgres_only
def test_with_workers_off_the_processes_serve_only_and_a_worker_runs_the_jobs(
    serve_two: Callable[[int], Served],
) -> None:
    two_processes = serve_two(0)
    answered = readiness_by_process(two_processes, 2)
    assert {
        checks["dispatcher"]["detail"]["workers_alive"]
        for answers in answered.values()
        for checks in answers
    } == {0}
    _offer_a_shift(two_processes.url)
    worker = subprocess.Popen(
        [CARETIME, "worker"],
        env=two_processes.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _sms_received_eventually(two_processes.url, phone(1))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=WAIT)
    _stop_and_expect_all_gone(two_processes, signal.SIGINT)  # Ctrl-C stops it as cleanly


def test_processes_on_sqlite_are_refused_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CARETIME_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'caretime.db'}",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [CARETIME, "serve", "--port", str(free_port()), "--processes", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 2
    assert (result.stdout + result.stderr).strip().splitlines() == [
        "error: --processes 2 needs PostgreSQL: SQLite lets one process write; serve with "
        "--processes 1 or set CARETIME_DATABASE_URL to PostgreSQL"
    ]
    assert not (tmp_path / "caretime.db").exists()  # nothing started


def _stop_and_expect_all_gone(served: Served, signum: signal.Signals) -> None:
    below = descendants(served.process.pid)
    served.process.send_signal(signum)
    assert served.process.wait(timeout=WAIT) == 0
    assert wait_until_gone(below) == set()  # no orphans left serving or holding the port


def _readiness_requests_counted_eventually(url: str, expected: int) -> float:
    """caretime_http_requests_total for GET /health/ready, as one scrape reports it (a
    request is counted as its answer leaves, so the count may trail the answers a moment)."""
    deadline = time.monotonic() + WAIT
    while True:
        scraped = httpx.get(f"{url}/metrics", headers=CLOSE, timeout=WAIT).text
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
            if sample.name == "caretime_http_requests_total"
            and sample.labels.get("route") == "/health/ready"
        )
        if counted >= expected or time.monotonic() > deadline:
            return counted
        time.sleep(0.2)


def _workers_alive_eventually(served: Served, expected: int) -> int:
    """Live dispatchers as readiness counts them (each beats once it has started)."""
    deadline = time.monotonic() + STARTUP
    while True:
        checks = httpx.get(f"{served.url}/health/ready", headers=CLOSE, timeout=WAIT).json()
        alive = int(checks["checks"]["dispatcher"]["detail"]["workers_alive"])
        if alive >= expected or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _offer_a_shift(url: str) -> None:
    """A shift offered to one caregiver: the SMS goes out from a dispatch job."""
    with httpx.Client(base_url=url, headers=bearer(TEST_API_KEY), timeout=WAIT) as http:
        assert http.patch("/tenants/me/policy", json=NO_QUIET_HOURS).status_code == 200
        caregiver = {"id": "c1", "name": "Caregiver", "phone": phone(1), "roles": ["RN"]}
        assert http.post("/caregivers", json=caregiver).status_code == 201
        start = datetime.now(UTC) + timedelta(hours=4)
        shift = {
            "id": "s1",
            "role_required": "RN",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=8)).isoformat(),
        }
        assert http.post("/shifts", json=shift).status_code == 201
        assert http.post("/shifts/s1/fanout").status_code == 202


def _sms_received_eventually(url: str, to: str) -> bool:
    deadline = time.monotonic() + STARTUP
    with httpx.Client(base_url=url, headers=bearer(TEST_API_KEY), timeout=WAIT) as http:
        while time.monotonic() < deadline:
            received = http.get("/simulator/messages", params={"to": to, "channel": "sms"})
            if received.json()["items"]:
                return True
            time.sleep(0.2)
    return False


def test_the_api_runs_on_uvloop_and_httptools_without_a_server_header(tmp_path: Path) -> None:
    """The fastest loop and parser uvicorn has, named (not "auto", which would fall back to
    asyncio and h11 without a word), installed, and the same as bench/api.py's twins use."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/serve.db")
    config = serving._config(serving.APP_FACTORY, settings, processes=1)
    assert (config.loop, config.http) == ("uvloop", "httptools")
    assert not config.server_header
    assert not config.access_log
    for module in (config.loop, config.http):
        importlib.import_module(module)
