"""Bounded requests against a real `caretime serve` process (issue 20.3): oversized bodies are
refused before they are read, whether declared or streamed, so the server's memory does not
grow with them; a large batch leaves /health answering; SIGTERM ends the process while a
batch is in flight."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import TEST_API_KEY, bearer

LIMIT = 2 * 1024 * 1024
OVERSIZE = 50 * 1024 * 1024
CHUNK = 256 * 1024
# Four 50 MB bodies are 200 MB on the wire; the server may grow by this much at most.
RSS_BOUND = 40 * 1024 * 1024


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def rss(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "CARETIME_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'caretime.db'}",
        "CARETIME_API_KEY": TEST_API_KEY,
        "CARETIME_MAX_BODY_BYTES": str(LIMIT),
        "CARETIME_SHUTDOWN_GRACE_SECONDS": "2",
        "CARETIME_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-c", "from caretime.cli import app; app()", "serve"]
    process = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url, process)
    yield Served(url, port, process)
    if process.poll() is None:
        process.kill()
        process.wait()


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("caretime serve did not start")


def _oversized_upload(port: int, declared: bool) -> bytes:
    """Send 50 MB without a key (with Content-Length, or chunked) and return the answer, which
    may come before the body is sent: the sender then stops."""
    framing = f"Content-Length: {OVERSIZE}" if declared else "Transfer-Encoding: chunked"
    head = (
        f"POST /schedule HTTP/1.1\r\nHost: caretime\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        sender = threading.Thread(target=_send_body, args=(sock, declared), daemon=True)
        sender.start()
        answer = _read_until_closed(sock)
    sender.join(timeout=60)
    return answer


def _send_body(sock: socket.socket, declared: bool) -> None:
    piece = b"[" + b" " * (CHUNK - 1)
    framed = piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece)
    try:
        for _ in range(OVERSIZE // CHUNK):
            sock.sendall(framed)
    except OSError:
        return  # the server answered and closed: nothing more is read


def _read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(64 * 1024):
            answer += chunk
    except OSError:
        pass  # a reset after the answer (the server closed with our body unread), or no end
    return answer


def test_oversized_bodies_are_413_without_growing_the_server(served: Served) -> None:
    before = served.rss()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(_oversized_upload, [served.port] * 4, [True, False] * 2))
    # Unauthenticated: the size is checked before the key.
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"413"] * 4
    grown = served.rss() - before
    assert grown < RSS_BOUND, f"the server grew by {grown / 2**20:.0f} MB"
    head, _, body = answers[0].partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert (problem["status"], problem["limit"]) == (413, LIMIT)


def test_a_large_batch_leaves_health_answering_and_sigterm_ends_it(served: Served) -> None:
    items = [{"name": f"P{i}", "phone": f"212-555-{i % 10000:04d}"} for i in range(40_000)]
    outcome: list[object] = []

    def post_batch() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{served.url}/schedule", json=items, headers=bearer(TEST_API_KEY), timeout=120
                ).status_code
            )
        except httpx.TransportError as exc:
            outcome.append(exc)

    batch = threading.Thread(target=post_batch)
    batch.start()
    health = [httpx.get(f"{served.url}/health", timeout=60).status_code for _ in range(5)]
    assert health == [200] * 5
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) is not None
    batch.join(timeout=60)
    assert outcome  # the client got an answer or a closed connection, not a hang
