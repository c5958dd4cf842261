"""Retry decisions as data: given an attempt that failed, when (if ever) to try again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by the job's age."""

    base_delay: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.2
    max_age: timedelta | None = timedelta(days=2)

    def next_run_at(
        self,
        *,
        attempts: int,
        max_attempts: int,
        created_at: datetime,
        now: datetime,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """The moment to try again, or None to give up. `attempts` counts tries so far."""
        if attempts >= max_attempts:
            return None
        delay = self.delay_for(attempts, rng or random.Random())
        run_at = now + delay
        if self.max_age is not None and run_at - created_at > self.max_age:
            return None
        return run_at

    def delay_for(self, attempts: int, rng: random.Random) -> timedelta:
        raw = self.base_delay.total_seconds() * self.factor ** max(attempts - 1, 0)
        capped = min(raw, self.max_delay.total_seconds())
        spread = capped * self.jitter
        return timedelta(seconds=max(0.0, capped + rng.uniform(-spread, spread)))


DEFAULT_RETRY = RetryPolicy()
