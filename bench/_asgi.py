"""Requests handed straight to an ASGI app, for the in-process benchmarks: no socket and no
client, so the process CPU a batch measures is the app's own (and the driver's small loop).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

_BASE_HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]


def scope(method: str, target: str, *, key: str | None = None, body: bytes = b"") -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it for `method target` (`target` may carry a query),
    with `Authorization: Bearer key` when a key is given and a JSON body's headers for one."""
    path, _, query = target.partition("?")
    headers = list(_BASE_HEADERS)
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, request: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    """One request: its status and its whole response body."""
    status, chunks = 0, []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the body was read: what follows would be the client going away
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(dict(request, state={}), receive, send)
    return status, b"".join(chunks)


async def cpu_per_request(
    app: Any, request: dict[str, Any], count: int, callers: int, *, expect: int = 200
) -> float:
    """The process's CPU µs per request for `count` requests from `callers` callers at once;
    a request answered with another status than `expect` stops the run (a benchmark of
    errors would measure the wrong path)."""

    async def caller(requests: int) -> None:
        for _ in range(requests):
            status, answer = await call(app, request)
            if status != expect:
                raise RuntimeError(f"{request['path']}: {status} {answer[:300]!r}")

    share, extra = divmod(count, callers)
    started = time.process_time()
    await asyncio.gather(*(caller(share + (n < extra)) for n in range(callers)))
    return (time.process_time() - started) / count * 1e6
