"""A real webhook receiver on loopback: a tiny threaded HTTP server that records every
request (headers, body, arrival) and answers from a script per path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic()
    peer: tuple[str, int] = ("", 0)  # the client's address: one per TCP connection

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    base_url: str
    received: list[Received] = field(default_factory=list)
    # path -> status codes to answer in turn (the last one repeats); default 200
    script: dict[str, list[int]] = field(default_factory=dict)
    # paths that never answer (the connection stays open until the client gives up)
    hanging: set[str] = field(default_factory=set)
    hung_until: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base_url + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def answer_for(self, path: str) -> int:
        with self.lock:
            codes = self.script.get(path)
            if not codes:
                return 200
            return codes.pop(0) if len(codes) > 1 else codes[0]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            with receiver.lock:
                receiver.received.append(
                    Received(
                        self.path,
                        dict(self.headers.items()),
                        body,
                        time.monotonic(),
                        self.client_address[:2],
                    )
                )
            if self.path in receiver.hanging:
                self.rfile.read(1)  # blocks until the client hangs up
                with receiver.lock:
                    receiver.hung_until.append(time.monotonic())
                return
            code = receiver.answer_for(self.path)
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # deliveries arrive up to 32 at a time per endpoint
    daemon_threads = True


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _handler(Receiver("")))
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
