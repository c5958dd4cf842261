"""In-process workers: `caretime serve` runs CARETIME_WORKERS of them beside the API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime


@dataclass
class WorkerPool:
    dispatchers: list[Dispatcher]
    stop_signal: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def start(cls, runtime: Runtime, *, count: int, concurrency: int) -> WorkerPool:
        pool = cls([Dispatcher(runtime, concurrency=concurrency) for _ in range(count)])
        pool.tasks = [
            asyncio.create_task(d.run_forever(pool.stop_signal), name=f"dispatcher-{i}")
            for i, d in enumerate(pool.dispatchers)
        ]
        return pool

    async def stop(self) -> None:
        """Let each worker finish the batch it holds, then return."""
        self.stop_signal.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
