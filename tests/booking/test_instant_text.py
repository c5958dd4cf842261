"""The text an aware instant is stored as in SQLite when sqlite3 sends the statement itself
(the slot search, the hold): SQLite compares instants as text, so a hold written this way
must read exactly as one the ORM wrote, or a slot could be found free (or taken) wrongly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from caretime.db import UTCDateTime
from caretime.sqlite_driver import NAMED, utc_text

INSTANTS = [
    datetime(2026, 12, 4, 9, 0, tzinfo=UTC),  # whole seconds: microseconds still written
    datetime(2026, 12, 4, 9, 0, 0, 1500, tzinfo=UTC),
    datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2))),  # another offset
    datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5))),  # another UTC day
    datetime(9, 1, 1, tzinfo=UTC),  # a year of fewer than four digits
]


def _sqlalchemys(value: datetime | None) -> object:
    process = UTCDateTime().dialect_impl(NAMED).bind_processor(NAMED)
    assert process is not None
    return process(value)


@pytest.mark.parametrize("instant", [*INSTANTS, None])
def test_an_instant_is_stored_as_sqlalchemy_stores_it(instant: datetime | None) -> None:
    assert utc_text(instant) == _sqlalchemys(instant)


def test_a_naive_instant_is_refused_as_sqlalchemy_refuses_it() -> None:
    naive = datetime(2026, 12, 4, 9, 0)
    with pytest.raises(ValueError, match="naive"):
        _sqlalchemys(naive)
    with pytest.raises(ValueError, match="naive"):
        utc_text(naive)
