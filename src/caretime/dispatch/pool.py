"""The workers of one process: `caretime serve` runs CARETIME_WORKERS of them beside the API,
`caretime worker` runs one with a larger concurrency. On PostgreSQL the pool also LISTENs, so
commits in other processes wake its workers at once."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from caretime import migrate
from caretime.config import Settings
from caretime.dispatch.listener import PostgresListener
from caretime.dispatch.worker import Dispatcher
from caretime.models import import_all_handlers
from caretime.runtime import Runtime, freeze_startup_heap


@dataclass
class WorkerPool:
    dispatchers: list[Dispatcher]
    stop_signal: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    listener: PostgresListener | None = None

    @classmethod
    def start(cls, runtime: Runtime, *, count: int, concurrency: int, **options: Any) -> WorkerPool:
        options.setdefault("lease", timedelta(seconds=runtime.settings.job_lease_seconds))
        pool = cls([Dispatcher(runtime, concurrency=concurrency, **options) for _ in range(count)])
        pool.tasks = [
            asyncio.create_task(d.run_forever(pool.stop_signal), name=f"dispatcher-{i}")
            for i, d in enumerate(pool.dispatchers)
        ]
        if count and runtime.engine.dialect.name == "postgresql":
            pool.listener = PostgresListener(runtime.settings.database_url, runtime.waker)
            pool.tasks.append(
                asyncio.create_task(pool.listener.run(pool.stop_signal), name="dispatch-listener")
            )
        on_clock_change = getattr(runtime.clock, "on_change", None)
        if count and on_clock_change is not None:
            # A frozen clock moved forward (tests): what became due should run now.
            on_clock_change(runtime.waker.wake)
        return pool

    async def stop(self) -> None:
        """Stop claiming, let running handlers finish (or release their jobs), then return."""
        self.stop_signal.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def run_worker_process(settings: Settings, *, concurrency: int, **options: Any) -> None:
    """`caretime worker`: run one dispatcher (and its listener) until SIGTERM or SIGINT, then
    stop gracefully."""
    runtime = Runtime.build(settings)
    try:
        if settings.is_sqlite:
            await migrate.upgrade(runtime.engine)
        import_all_handlers()
        pool = WorkerPool.start(runtime, count=1, concurrency=concurrency, **options)
        freeze_startup_heap()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, pool.stop_signal.set)
        await pool.stop_signal.wait()
        await pool.stop()
    finally:
        await runtime.close()
