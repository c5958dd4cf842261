"""`caretime serve` and `caretime worker` as operators start them: real processes, real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CARETIME = str(Path(sys.executable).parent / "caretime")
SECRET_KEY = "ct_banner_secret_0123456789abcdef"
WAIT = 60.0  # seconds: a bound on waiting, never an assertion


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CARETIME_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'caretime.db'}",
        "CARETIME_API_KEY": SECRET_KEY,
        "CARETIME_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARETIME, *args], env=env, capture_output=True, text=True, timeout=WAIT, check=False
    )


def test_serve_on_a_busy_port_says_so_in_one_line_and_starts_nothing(
    env: dict[str, str], busy_port: int, tmp_path: Path
) -> None:
    result = run(env, "serve", "--port", str(busy_port))
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        f"error: port {busy_port} is already in use on 127.0.0.1: "
        "stop what uses it or choose another"
    ]
    assert not (tmp_path / "caretime.db").exists()  # no migration ran


def test_serve_on_an_address_not_of_this_machine_is_one_line(env: dict[str, str]) -> None:
    port = free_port()
    result = run(env, "serve", "--host", "192.0.2.1", "--port", str(port))  # TEST-NET-1
    assert result.returncode == 1
    assert (result.stdout + result.stderr).strip().splitlines() == [
        f"error: cannot listen on 192.0.2.1:{port}: 192.0.2.1 is not an address of this machine"
    ]


def test_the_banner_shows_only_the_api_key_prefix(env: dict[str, str]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [CARETIME, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = _read_until(process, "try ")
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=WAIT).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=WAIT)
    assert SECRET_KEY not in banner + rest
    assert f"API key    {SECRET_KEY[:10]}..." in banner


def _read_until(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"the process ended before printing {marker!r}: {seen}")


@pytest.fixture
def worker(env: dict[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
    port = free_port()
    env = {**env, "CARETIME_METRICS_TOKEN": "scrape-me"}
    process = subprocess.Popen(
        [CARETIME, "worker", "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port("127.0.0.1", port, process)
        yield port, env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=WAIT)


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the worker's metrics port never opened")


def test_worker_metrics_listen_on_loopback_only_and_want_the_token(
    worker: tuple[int, dict[str, str]],
) -> None:
    port, _ = worker
    # 127.0.0.2 is this machine too: a server bound to every interface would answer it.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()
    url = f"http://127.0.0.1:{port}/metrics"
    refused = httpx.get(url, timeout=WAIT)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    scraped = httpx.get(url, headers={"Authorization": "Bearer scrape-me"}, timeout=WAIT)
    assert scraped.status_code == 200
    assert "caretime_jobs_in_flight" in scraped.text


def test_worker_metrics_port_busy_is_one_line(env: dict[str, str], busy_port: int) -> None:
    result = run(env, "worker", "--metrics-port", str(busy_port))
    assert result.returncode == 1
    assert (result.stdout + result.stderr).strip().splitlines() == [
        f"error: port {busy_port} is already in use on 127.0.0.1: "
        "stop what uses it or choose another"
    ]
