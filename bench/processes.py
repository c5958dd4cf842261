"""What `caretime serve --processes N` buys: `GET /health` and an authenticated
`GET /tenants/me` under `wrk`, one API process against N (default 2), on PostgreSQL, in one
run. Workers are off (CARETIME_WORKERS=0): this measures the API alone. Sizes by environment:
CARETIME_BENCH_PROCESSES (2), CARETIME_BENCH_SECONDS (10), CARETIME_BENCH_CONNECTIONS (32).
`wrk` is Debian's package (`apt-get install -y wrk`)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import CARETIME, free_port, postgres_database

KEY = "ct_bench_processes_key"
PROCESSES = int(os.environ.get("CARETIME_BENCH_PROCESSES", "2"))
SECONDS = int(os.environ.get("CARETIME_BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("CARETIME_BENCH_CONNECTIONS", "32"))
STARTUP = 180.0  # seconds: spawning interpreters on a busy machine is slow
ROUTES = (("GET /health", "/health", False), ("GET /tenants/me", "/tenants/me", True))


@dataclass
class Figures:
    per_second: float
    p50: str
    p99: str

    def line(self) -> str:
        return f"{self.per_second:8.0f} req/s  p50 {self.p50:>8}  p99 {self.p99:>8}"


@contextmanager
def serving(database_url: str, processes: int) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "CARETIME_DATABASE_URL": database_url,
        "CARETIME_API_KEY": KEY,
        "CARETIME_WORKERS": "0",
        "CARETIME_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [CARETIME, "serve", "--port", str(port), "--processes", str(processes)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_processes(url, processes, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _wait_for_processes(url: str, processes: int, process: subprocess.Popen[bytes]) -> None:
    """Until `processes` distinct PIDs answered /health/ready (each child has started)."""
    seen: set[int] = set()
    deadline = time.monotonic() + STARTUP
    while len(seen) < processes:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"caretime serve --processes {processes} did not start")
        try:
            checks = httpx.get(f"{url}/health/ready", headers={"Connection": "close"}).json()
            seen.add(checks["checks"]["process"]["detail"]["pid"])
        except httpx.TransportError:
            time.sleep(0.2)


def wrk(url: str, authenticated: bool) -> Figures:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", url]
    if authenticated:
        command[1:1] = ["-H", f"Authorization: Bearer {KEY}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} failed responses\n{output}")
    per_second = float(_field(r"Requests/sec:\s+([\d.]+)", output))
    p50 = _field(r"\s50%\s+(\S+)", output)
    p99 = _field(r"\s99%\s+(\S+)", output)
    return Figures(per_second, p50, p99)


def _field(pattern: str, output: str) -> str:
    found = re.search(pattern, output)
    if found is None:
        raise SystemExit(f"wrk said something unexpected:\n{output}")
    return found.group(1)


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    print(f"wrk -t2 -c{CONNECTIONS} -d{SECONDS}s, PostgreSQL, CARETIME_WORKERS=0")
    results: dict[tuple[str, int], Figures] = {}
    with postgres_database("caretime_bench_processes") as database_url:
        subprocess.run(
            [CARETIME, "migrate"],
            env={**os.environ, "CARETIME_DATABASE_URL": database_url},
            check=True,
            capture_output=True,
        )
        for processes in (1, PROCESSES):
            with serving(database_url, processes) as url:
                wrk(f"{url}/health", False)  # warm-up: connections, caches, code paths
                for label, path, authenticated in ROUTES:
                    before = load_average()
                    results[label, processes] = figures = wrk(f"{url}{path}", authenticated)
                    print(
                        f"  --processes {processes}  {label:<16} {figures.line()}"
                        f"  (load average {before})"
                    )
    for label, _, _ in ROUTES:
        ratio = results[label, PROCESSES].per_second / results[label, 1].per_second
        print(f"  {label:<16} {PROCESSES} processes / 1 = {ratio:.2f}")


if __name__ == "__main__":
    main()
