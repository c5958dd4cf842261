"""How `caretime serve` runs the API: in one process, or in N processes sharing one port.

With N processes (PostgreSQL only) the parent has already bound the port and prepared the
database once; it then starts N children through uvicorn's supervisor (fresh interpreters,
spawned, not forked). Each child builds its own app, engine, pool and, if CARETIME_WORKERS
says so, its own dispatcher workers, and accepts connections on the inherited socket: the
kernel hands each new connection to one of them. The parent serves nothing: it restarts a
child that dies and, on SIGTERM or SIGINT, stops them all (each lets its requests finish
within CARETIME_SHUTDOWN_GRACE_SECONDS), waits for them and returns.
"""

from __future__ import annotations

import os
import socket

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from caretime import sharedmetrics
from caretime.app import create_app
from caretime.config import Settings, get_settings
from caretime.health import Check
from caretime.observability import configure_logging
from caretime.runtime import Runtime

# What each child imports and calls to build its app (uvicorn pickles the name, not the app).
APP_FACTORY = "caretime.serving:child_app"
# The supervisor pings each child every half second and replaces one that does not answer
# within this. A child answers only once it has imported caretime, which took over uvicorn's
# default 5 s on a loaded 2-core machine: every child was replaced, forever, before it served.
# A child that really hangs is replaced this late; one that exits, at once.
CHILD_ANSWER_SECONDS = 60
# The fastest event loop and HTTP/1.1 parser uvicorn has; bench/api.py serves the bare twins
# with the same ones.
UVICORN_LOOP = "uvloop"
UVICORN_HTTP = "httptools"


class ProcessFailedToStart(Exception):
    """A serving process stopped before it served (its log says why); the others were stopped."""


def serve(settings: Settings, listening: socket.socket, processes: int) -> None:
    """Serve on `listening` until SIGTERM or SIGINT; the database is already prepared."""
    if processes == 1:
        server = uvicorn.Server(_config(serving_app(settings), settings, processes=1))
        server.run(sockets=[listening])
        return
    with sharedmetrics.shared_between_processes():
        supervisor = Multiprocess(
            _config(APP_FACTORY, settings, processes=processes), sockets=[listening]
        )
        supervisor.run()
    if any(child.exitcode == STARTUP_FAILURE for child in supervisor.processes):
        raise ProcessFailedToStart("an API process failed to start: see its log above")


def _config(app: FastAPI | str, settings: Settings, *, processes: int) -> uvicorn.Config:
    # After SIGTERM, requests in flight get the grace period; then they are cancelled (a
    # cancelled batch rolls back) and the process exits. The loop and the HTTP parser are
    # uvloop and httptools (uvicorn[standard] installs both; "auto" would fall back to
    # asyncio and h11, several times slower per request, without a word if they were
    # missing). No access log (each request's JSON line is caretime's own, without the
    # query string) and no `server` header (it tells a caller nothing it needs).
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=processes,
        loop=UVICORN_LOOP,
        http=UVICORN_HTTP,
        server_header=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        timeout_worker_healthcheck=CHILD_ANSWER_SECONDS,
    )


def serving_app(settings: Settings) -> FastAPI:
    """The app of one serving process: its own runtime, and workers if CARETIME_WORKERS."""
    app = create_app(settings, freeze_heap=True, database_prepared=True)
    app.state.readiness_checks["process"] = process_check
    return app


def child_app() -> FastAPI:
    """APP_FACTORY: a child reads the same environment as its parent, which checked it."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return serving_app(settings)


async def process_check(runtime: Runtime) -> Check:
    """Which process answered: with several on one port, the one a probe reached."""
    return Check(ok=True, detail={"pid": os.getpid()})
