"""When to try a failed delivery again, and when to give up: retry policy as data."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# After attempt n fails, wait STEPS[n - 1] (the last one repeats), with ±10 % jitter so that
# deliveries that failed together do not all come back together.
STEPS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
)
GIVE_UP_AFTER = timedelta(days=3)
DISABLE_AFTER = timedelta(hours=24)
JITTER = 0.1


def next_attempt_at(
    attempts: int, *, created_at: datetime, now: datetime, rng: random.Random | None = None
) -> datetime | None:
    """The moment for attempt `attempts + 1`, or None: the delivery is older than 3 days."""
    step = STEPS[min(attempts, len(STEPS)) - 1].total_seconds()
    spread = step * JITTER * (rng or random).uniform(-1, 1)
    at = now + timedelta(seconds=step + spread)
    return None if at - created_at > GIVE_UP_AFTER else at


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
