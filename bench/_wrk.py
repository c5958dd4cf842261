"""HTTP load with `wrk` (Debian's package), a C load generator that costs the shared cores
little, so what a benchmark sees is the server, not its own client.

`run(url, Load(...), seconds=...)` drives one request shape for a while and returns
requests/s, p50/p99 latency and the count of each status. Bodies may differ per request: a
`Load` can give a Lua expression for the body, evaluated with `i`, a number no other request
of the run gets (`first` + thread × 1,000,000 + the thread's request count), so concurrent
writers need not collide, and runs given different `first`s do not either.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def ensure_wrk() -> str:
    """The path of `wrk`, installed from Debian (`apt-get install -y wrk`) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing it with apt-get (Debian package 'wrk')", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk could not be installed: apt-get install -y wrk")
    return found


@dataclass(frozen=True)
class Load:
    """One request shape: a method, a path, headers and a fixed or per-request body."""

    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    # A Lua expression giving the body of request number `i`, e.g.
    # '"{\\"n\\": " .. i .. "}"'. Wins over `body`.
    lua_body: str | None = None


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(self.statuses.items()))
        errors = f"  socket errors {self.socket_errors}" if self.socket_errors else ""
        return (
            f"{self.per_second:8.0f}/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:7.2f} ms"
            f"  [{statuses}]{errors}"
        )


def combined(results: list[WrkResult]) -> WrkResult:
    """Runs of the same load as one: requests over seconds; each percentile the mean of the
    runs' weighted by their requests (an approximation: wrk reports percentiles, not its
    histogram)."""
    requests = sum(result.requests for result in results)
    weight = requests or 1

    def mean(values: list[float]) -> float:
        return sum(v * r.requests for v, r in zip(values, results, strict=True)) / weight

    statuses: dict[int, int] = {}
    for result in results:
        for code, count in result.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
    return WrkResult(
        requests=requests,
        seconds=sum(result.seconds for result in results),
        p50_ms=mean([result.p50_ms for result in results]),
        p99_ms=mean([result.p99_ms for result in results]),
        statuses=statuses,
        socket_errors=sum(result.socket_errors for result in results),
    )


def run(
    base_url: str,
    load: Load,
    *,
    seconds: float,
    connections: int = 16,
    threads: int = 1,
    timeout_seconds: float = 10,
    first: int = 0,
) -> WrkResult:
    """Drive `load` against `base_url` for `seconds` with `connections` kept-alive
    connections (each waits for its answer before sending again: a closed loop)."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="caretime-wrk-") as folder:
        script = Path(folder) / "load.lua"
        report = Path(folder) / "report.json"
        script.write_text(_script(load, report, first))
        completed = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{max(connections, threads)}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={timeout_seconds}s",
                "-s",
                str(script),
                base_url.rstrip("/") + load.path,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0 or not report.exists():
            raise RuntimeError(f"wrk failed: {completed.stderr.strip() or completed.stdout}")
        return _result(json.loads(report.read_text()))


def _result(raw: dict[str, object]) -> WrkResult:
    statuses = raw.get("statuses") or {}
    assert isinstance(statuses, dict)
    return WrkResult(
        requests=int(raw["requests"]),  # type: ignore[call-overload]
        seconds=float(raw["seconds"]),  # type: ignore[arg-type]
        p50_ms=float(raw["p50_us"]) / 1000,  # type: ignore[arg-type]
        p99_ms=float(raw["p99_us"]) / 1000,  # type: ignore[arg-type]
        statuses={int(code): int(count) for code, count in statuses.items()},
        socket_errors=int(raw["socket_errors"]),  # type: ignore[call-overload]
    )


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def _script(load: Load, report: Path, first: int) -> str:
    headers = "\n".join(
        f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}"
        for name, value in load.headers.items()
    )
    fixed_body = f"wrk.body = {_lua_string(load.body)}" if load.body is not None else ""
    body = load.lua_body or "nil"
    return _TEMPLATE.format(
        method=_lua_string(load.method),
        headers=headers,
        fixed_body=fixed_body,
        dynamic="true" if load.lua_body else "false",
        body=body,
        report=_lua_string(str(report)),
        first=first,
    )


# Every thread counts the statuses it saw; `done` (run once, in the main state) adds them up
# from each thread's state and writes one JSON report.
_TEMPLATE = """
wrk.method = {method}
{headers}
{fixed_body}
local threads = {{}}
local counter = 0

function setup(thread)
  thread:set("t", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  n = 0
  statuses = {{}}
end

function request()
  if {dynamic} then
    i = {first} + t * 1000000 + n
    local body = {body}
    n = n + 1
    return wrk.format(nil, nil, nil, body)
  end
  return wrk.format()
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {{}}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for code, count in pairs(seen) do
      totals[tostring(code)] = (totals[tostring(code)] or 0) + count
    end
  end
  local parts = {{}}
  for code, count in pairs(totals) do
    table.insert(parts, string.format('"%s": %d', code, count))
  end
  local errors = summary.errors
  local file = io.open({report}, "w")
  file:write(string.format(
    '{{"requests": %d, "seconds": %.6f, "p50_us": %d, "p99_us": %d, ' ..
    '"socket_errors": %d, "statuses": {{%s}}}}',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout, table.concat(parts, ", ")))
  file:close()
end
"""
