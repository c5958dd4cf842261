"""What caregivers read: the shift's local time with its zone, and nothing private."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caretime.shifts.models import Shift
from caretime.shifts.texts import offer_text, when


def _shift(start: datetime, end: datetime, tz: str, **fields: str) -> Shift:
    return Shift(id="s1", role_required="LPN", start_time=start, end_time=end, tz=tz, **fields)


@pytest.mark.parametrize(
    ("start", "end", "tz", "expected"),
    [
        (
            datetime(2025, 7, 2, 12, 0, tzinfo=UTC),
            datetime(2025, 7, 2, 20, 0, tzinfo=UTC),
            "America/New_York",
            "Wed Jul 2, 8:00 AM–4:00 PM EDT",
        ),
        (
            datetime(2025, 7, 2, 16, 0, tzinfo=UTC),
            datetime(2025, 7, 3, 0, 0, tzinfo=UTC),
            "America/Los_Angeles",
            "Wed Jul 2, 9:00 AM–5:00 PM PDT",
        ),
        (
            datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
            datetime(2026, 3, 3, 11, 0, tzinfo=UTC),
            "America/Chicago",
            "Mon Mar 2 9:00 PM – Tue Mar 3 5:00 AM CST",
        ),
        (
            datetime(2026, 3, 2, 12, 30, tzinfo=UTC),
            datetime(2026, 3, 2, 13, 0, tzinfo=UTC),
            "UTC",
            "Mon Mar 2, 12:30 PM–1:00 PM UTC",
        ),
    ],
)
def test_when_is_local_with_the_zone(
    start: datetime, end: datetime, tz: str, expected: str
) -> None:
    assert when(_shift(start, end, tz)) == expected


def test_offer_never_includes_notes() -> None:
    shift = _shift(
        datetime(2025, 7, 2, 12, 0, tzinfo=UTC),
        datetime(2025, 7, 2, 20, 0, tzinfo=UTC),
        "America/New_York",
        location="North Seattle",
        notes="patient Jane Doe, 12 Elm St",
    )
    for channel in ("sms", "voice"):
        text = offer_text(shift, channel)
        assert "North Seattle" in text
        assert "Jane" not in text
    assert "Reply YES" in offer_text(shift, "sms")


def test_the_voice_offer_asks_for_a_key_not_a_text() -> None:
    shift = _shift(
        datetime(2025, 7, 2, 12, 0, tzinfo=UTC),
        datetime(2025, 7, 2, 20, 0, tzinfo=UTC),
        "America/New_York",
    )
    spoken = offer_text(shift, "voice")
    assert spoken.endswith("Press 1 to take the shift, or 2 to pass.")
    assert "yes" not in spoken.lower()
    assert "text" not in spoken.lower()
