"""Waking workers when a commit adds work: one NOTIFY per PostgreSQL transaction, and an
in-process signal for workers in the same process (the only way on SQLite)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from caretime.clock import Clock, SystemClock

NOTIFY_CHANNEL = "caretime_jobs"
_EARLIEST = "dispatch_earliest_run_at"


class Waker:
    """A thread-safe "something changed" signal that any number of worker loops can await."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def subscribe(self) -> asyncio.Event:
        signal = asyncio.Event()
        with self._lock:
            self._waiters.append((asyncio.get_running_loop(), signal))
        return signal

    def unsubscribe(self, signal: asyncio.Event) -> None:
        with self._lock:
            self._waiters = [(loop, s) for loop, s in self._waiters if s is not signal]

    def wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, signal in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(signal.set)


def session_clock(session: AsyncSession | Session) -> Clock:
    clock: Clock = session.info.get("clock") or SystemClock()
    return clock


def mark_enqueued(session: AsyncSession, run_at: datetime) -> None:
    """Remember that this transaction added work, so its commit wakes the workers."""
    earliest = session.info.get(_EARLIEST)
    session.info[_EARLIEST] = run_at if earliest is None else min(earliest, run_at)


def install(session_class: type[Session], waker: Waker) -> None:
    """Hook a runtime's session class so every committing transaction that enqueued wakes
    the workers exactly once."""

    @event.listens_for(session_class, "before_commit")
    def _notify_other_processes(session: Session) -> None:
        if session.info.get(_EARLIEST) is not None and _is_postgres(session):
            # NOTIFY is transactional: it is delivered at commit, and dropped on rollback.
            session.connection().exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")

    @event.listens_for(session_class, "after_commit")
    def _wake_this_process(session: Session) -> None:
        if session.info.pop(_EARLIEST, None) is not None:
            waker.wake()

    @event.listens_for(session_class, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(_EARLIEST, None)


def _is_postgres(session: Session) -> bool:
    bind: Any = session.get_bind()
    return bool(bind.dialect.name == "postgresql")
