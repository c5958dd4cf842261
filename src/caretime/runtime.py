"""The runtime: settings, database and clock that one caretime process shares."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from caretime.clock import Clock, SystemClock
from caretime.config import Settings
from caretime.db import create_engine, create_read_engine
from caretime.dispatch import wakeup

S = TypeVar("S")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # For requests that only read (GET): the same database, each statement its own
    # transaction (no BEGIN/COMMIT round trips, never SQLite's write lock).
    read_sessions: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=SystemClock)
    waker: wakeup.Waker = field(default_factory=wakeup.Waker)
    # Long-lived services that domains attach at start-up (dispatcher, providers...), by name.
    services: dict[str, Any] = field(default_factory=dict)
    # What services need done when the runtime closes (close pooled HTTP clients...).
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def service(self, name: str, make: Callable[[], S]) -> S:
        """The process's one `name` service, made by `make` on first use."""
        found = self.services.get(name)
        if found is None:
            found = self.services[name] = make()
        return found

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        # Each in-process worker may run worker_concurrency handlers at once, each with its
        # own connection; a smaller pool would open and close connections per job.
        pool: dict[str, Any] = {}
        if not settings.is_sqlite:
            pool = {
                "pool_size": settings.pool_size,
                "max_overflow": settings.db_max_overflow,
                "pool_timeout": settings.db_pool_timeout,
            }
        engine = create_engine(settings.database_url, **pool)
        read_engine = create_read_engine(settings.database_url, engine)
        clock = clock or SystemClock()
        waker = wakeup.Waker()
        # A session class of our own, so this runtime's commit hooks never leak into another's.
        session_class = type("RuntimeSession", (Session,), {})
        wakeup.install(session_class, waker)

        def sessionmaker(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
            return async_sessionmaker(
                bind,
                expire_on_commit=False,
                autoflush=False,
                sync_session_class=session_class,
                info={"clock": clock},
            )

        return cls(settings, engine, sessionmaker(engine), sessionmaker(read_engine), clock, waker)

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine behind `read_sessions` (autocommit; on SQLite, its own connections)."""
        engine: AsyncEngine = self.read_sessions.kw["bind"]
        return engine

    async def close(self) -> None:
        while self.on_close:
            await self.on_close.pop()()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def freeze_startup_heap() -> None:
    """Put every object alive after start-up (modules, models, routes, calendars, the worker
    pool) beyond the cycle collector's reach, for the life of the process: they live that
    long anyway. A full collection then walks only what requests and jobs allocated since.
    Over the whole heap one took 200-240 ms here, paid in the middle of a fan-out; after the
    freeze, 17-50 ms. Called by the processes' entry points (`caretime serve`, `caretime
    worker`), not by every app a test builds: what a test process freezes it never frees."""
    gc.collect()
    gc.freeze()
