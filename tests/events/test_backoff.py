"""The retry schedule as data: each row a case a reader can check by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from caretime.events.webhooks.backoff import next_attempt_at, should_disable

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Middle(random.Random):
    """No jitter: uniform() answers the middle of its range."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [
        (1, timedelta(seconds=5)),
        (2, timedelta(seconds=30)),
        (3, timedelta(minutes=2)),
        (4, timedelta(minutes=10)),
        (8, timedelta(hours=6)),
        (9, timedelta(hours=12)),
        (12, timedelta(hours=12)),  # the last step repeats
    ],
)
def test_each_failure_waits_longer_up_to_twelve_hours(attempts: int, wait: timedelta) -> None:
    assert next_attempt_at(attempts, created_at=T0, now=T0, rng=Middle()) == T0 + wait


def test_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(7)
    waits = [next_attempt_at(5, created_at=T0, now=T0, rng=rng) - T0 for _ in range(200)]
    assert min(waits) >= timedelta(minutes=27)
    assert max(waits) <= timedelta(minutes=33)
    assert len(set(waits)) > 100  # spread, so failures together do not return together


@pytest.mark.parametrize(
    ("age", "gives_up"),
    [
        (timedelta(days=2), False),
        (timedelta(days=2, hours=12), False),
        (timedelta(days=2, hours=13), True),
        (timedelta(days=3), True),
    ],
)
def test_a_delivery_older_than_three_days_fails_for_good(age: timedelta, gives_up: bool) -> None:
    result = next_attempt_at(9, created_at=T0, now=T0 + age, rng=Middle())
    assert (result is None) is gives_up


@pytest.mark.parametrize(
    ("failing_for", "disabled"),
    [(None, False), (timedelta(hours=23, minutes=59), False), (timedelta(hours=24), True)],
)
def test_an_endpoint_failing_24_hours_in_a_row_is_disabled(
    failing_for: timedelta | None, disabled: bool
) -> None:
    since = None if failing_for is None else T0 - failing_for
    assert should_disable(since, T0) is disabled
