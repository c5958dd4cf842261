"""free_slots counts each window's grid starts, and the runs of them busy time rules out,
instead of trying them one by one: the same slots as trying every start of visit_starts
against every busy span, for windows, shapes, bounds and busy time around every edge."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from caretime.booking.availability import Window
from caretime.booking.grid import Slot, Span, VisitShape, free_slots
from tests.booking.support import visit_starts

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
GRID = timedelta(minutes=15)


def _tried(
    windows: list[Window], busy: list[Span], shape: VisitShape, start: datetime, end: datetime
) -> list[Slot]:
    """Every start visit_starts offers, tried in turn against every busy span."""
    return [
        Slot(slot_start, "p", shape.end(slot_start))
        for slot_start, _ in visit_starts(windows, GRID, shape)
        if start <= slot_start < end and not _overlaps(shape.occupied(slot_start), busy)
    ]


def _overlaps(occupied: Span, busy: list[Span]) -> bool:
    return any(b0 < occupied[1] and occupied[0] < b1 for b0, b1 in busy)


def _window(start_minute: int, end_minute: int) -> Window:
    at = (T0 + timedelta(minutes=m) for m in (start_minute, end_minute))
    return Window(date(2026, 3, 10), start_minute, end_minute, *at)


def _minutes(*pairs: tuple[int, int]) -> list[Span]:
    return [(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b)) for a, b in pairs]


@pytest.mark.parametrize(
    ("windows", "shape", "bounds", "busy", "starts"),
    [
        # one window, plain slots, nothing busy: every quarter hour that ends inside it
        ([(0, 60)], VisitShape(15), (0, 60), [], [0, 15, 30, 45]),
        # a 45-minute visit with a 15-minute buffer after: must end by 60 - 15
        ([(0, 90)], VisitShape(45, 0, 15), (0, 90), [], [0, 15, 30]),
        # a buffer before: the first start leaves it inside the window
        ([(0, 60)], VisitShape(15, 20, 0), (0, 60), [], [30, 45]),
        # bounds cut the window on both sides; the end bound is exclusive
        ([(0, 120)], VisitShape(15), (20, 60), [], [30, 45]),
        # busy time touching a slot does not block it; overlapping does
        ([(0, 60)], VisitShape(15), (0, 60), [(15, 30)], [0, 30, 45]),
        ([(0, 60)], VisitShape(30, 0, 10), (0, 60), [(50, 55)], [0]),
        # a window shorter than the visit offers nothing; bounds after it neither
        ([(0, 30)], VisitShape(45), (0, 30), [], []),
        ([(0, 60)], VisitShape(15), (60, 120), [], []),
        # several windows in order
        ([(0, 30), (60, 90)], VisitShape(15), (0, 90), [(60, 75)], [0, 15, 75]),
    ],
)
def test_free_slots(
    windows: list[tuple[int, int]],
    shape: VisitShape,
    bounds: tuple[int, int],
    busy: list[tuple[int, int]],
    starts: list[int],
) -> None:
    start, end = (T0 + timedelta(minutes=m) for m in bounds)
    found = free_slots(
        "p",
        [_window(*w) for w in windows],
        _minutes(*busy),
        grid=GRID,
        shape=shape,
        start=start,
        end=end,
    )
    assert [int((s.start - T0) / timedelta(minutes=1)) for s in found] == starts
    assert all(s.end == shape.end(s.start) for s in found)


def test_free_slots_are_the_tried_starts_whatever_the_case() -> None:
    chance = random.Random(18)
    for _ in range(3000):
        cuts = sorted(chance.sample(range(0, 24 * 60 // 5), chance.choice([2, 4, 6])))
        windows = [_window(a * 5, b * 5) for a, b in zip(cuts[::2], cuts[1::2], strict=True)]
        minutes = chance.choice([15, 30, 45, 60])
        shape = VisitShape(minutes, chance.choice([0, 5, 15, 60]), chance.choice([0, 10, 15]))
        low, high = sorted(chance.sample(range(-60, 25 * 60), 2))
        start, end = T0 + timedelta(minutes=low), T0 + timedelta(minutes=high)
        busy = [
            (T0 + timedelta(minutes=at), T0 + timedelta(minutes=at + chance.choice([5, 15, 75])))
            for at in chance.sample(range(-120, 24 * 60), chance.choice([0, 1, 5]))
        ]
        found = free_slots("p", windows, busy, grid=GRID, shape=shape, start=start, end=end)
        assert found == _tried(windows, busy, shape, start, end)
