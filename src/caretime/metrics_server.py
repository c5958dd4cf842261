"""A worker process's Prometheus endpoint: loopback by default, behind the metrics token."""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from pydantic import SecretStr

from caretime.listen import explain
from caretime.operator_access import guarded

DEFAULT_METRICS_HOST = "127.0.0.1"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds would flood stderr, outside the structured logs."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def start_metrics_server(host: str, port: int, token: SecretStr | None) -> WSGIServer:
    """Serve /metrics on host:port from a daemon thread; CannotListen if it cannot bind."""
    server_class = _Server6 if ":" in host else _Server
    try:
        server = make_server(
            host, port, guarded(make_wsgi_app(), token), server_class, _QuietHandler
        )
    except OSError as exc:
        raise explain(exc, host, port) from exc
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
