"""Per-provider rate limits: a token bucket per provider per process, shared by every job of
that process. A send that would wait more than a moment is not slept on: the job reserves its
slot and hands the message to a new job due at that slot (see tasks.py)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """A token bucket as a virtual schedule: each send reserves the next free instant."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate_per_second
        self.burst_window = (
            burst if burst is not None else max(1.0, rate_per_second / 10)
        ) * self.interval
        self.monotonic = monotonic
        self._next_free = monotonic() - self.burst_window

    def reserve(self) -> float:
        """Reserve the next send slot; returns how many seconds from now it starts."""
        now = self.monotonic()
        start = max(self._next_free, now - self.burst_window)
        self._next_free = start + self.interval
        return max(0.0, start - now)
