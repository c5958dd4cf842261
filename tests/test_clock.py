"""The injectable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from caretime.clock import FrozenClock, SystemClock, ensure_utc, isoformat_z


def test_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


def test_frozen_clock_moves_only_when_told_and_tells_listeners() -> None:
    clock = FrozenClock(datetime(2026, 3, 8, 6, 59, tzinfo=UTC))
    heard: list[datetime] = []
    clock.on_change(lambda: heard.append(clock.now()))
    assert clock.now() == clock.now()
    clock.advance(timedelta(minutes=10))
    assert clock.now() == datetime(2026, 3, 8, 7, 9, tzinfo=UTC)
    assert heard == [clock.now()]


def test_naive_datetimes_are_refused_and_offsets_normalised() -> None:
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2026, 1, 1, 12, 0))
    eastern = datetime(2026, 1, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert isoformat_z(eastern) == "2026-01-01T12:00:00Z"
