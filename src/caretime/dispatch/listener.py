"""LISTEN for commit wake-ups from other processes on a dedicated PostgreSQL connection.

Enqueueing transactions send one `NOTIFY caretime_jobs` at commit (see wakeup.py); this
listener turns each notification into a wake-up of every worker loop in this process. If
the connection drops, workers keep polling (at most a second apart) while it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from caretime.dispatch.wakeup import NOTIFY_CHANNEL, Waker

log = logging.getLogger("caretime.dispatch")
RECONNECT_DELAY = 1.0


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq URL asyncpg wants, from a SQLAlchemy URL (`postgresql+asyncpg://`)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresListener:
    def __init__(self, database_url: str, waker: Waker) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.waker = waker
        self.listening = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, reconnecting after failures."""
        while not stop.is_set():
            try:
                await self._listen_once(stop)
            except (OSError, asyncpg.PostgresError) as exc:
                self.listening.clear()
                log.warning("dispatch_listener_lost", extra={"fields": {"error": repr(exc)}})
                await _wait(stop, RECONNECT_DELAY)

    async def _listen_once(self, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self.dsn)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self._notified)
            self.listening.set()
            # Work committed while we were not listening is found by the next poll; wake
            # the loops now so that "next poll" is immediate.
            self.waker.wake()
            await _first(stop.wait(), lost.wait())
        finally:
            self.listening.clear()
            if not connection.is_closed():
                await connection.close(timeout=5)

    def _notified(self, *_args: Any) -> None:
        self.waker.wake()


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
