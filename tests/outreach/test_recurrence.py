"""The pure part of recurring calls: which rules are taken (and how they are kept), local
wall times across DST, and where the planner puts an occurrence. Each row checkable by hand."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caretime.outreach.recurrence import (
    Exhausted,
    Placed,
    Recurrence,
    Waiting,
    checked_rule,
    place_next,
    start_wall,
    until_in_zone,
)
from caretime.policy import CapacityLedger, PlanItem
from caretime.tenancy.policy import CallingPolicy

NEW_YORK = ZoneInfo("America/New_York")
MONDAY_10_EST = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ANN = PlanItem("Ann", "+12125550100")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("FREQ=WEEKLY;BYDAY=MO;COUNT=8", "FREQ=WEEKLY;BYDAY=MO;COUNT=8"),
        ("rrule:freq=weekly;byday=mo", "FREQ=WEEKLY;BYDAY=MO"),
        ("FREQ=DAILY;BYHOUR=10", "FREQ=DAILY;BYHOUR=10;BYMINUTE=0"),
        ("FREQ=DAILY;BYHOUR=10;BYMINUTE=30", "FREQ=DAILY;BYHOUR=10;BYMINUTE=30"),
        (" FREQ=MONTHLY;BYDAY=-1FR; ", "FREQ=MONTHLY;BYDAY=-1FR"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"),
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        ),
        ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"),
    ],
)
def test_rules_taken_and_how_they_are_kept(given: str, kept: str) -> None:
    assert checked_rule(given) == kept


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("FREQ=MINUTELY", "more often than daily"),
        ("FREQ=FORTNIGHTLY", "FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY"),
        ("FREQ=WEEKLY;BYWEEKNO=3", "BYWEEKNO is not supported"),
        ("FREQ=WEEKLY;COLOUR=RED", "unknown RRULE part 'COLOUR'"),
        ("FREQ=WEEKLY;FREQ=DAILY", "FREQ is given twice"),
        ("FREQ=WEEKLY;BYDAY", "'BYDAY' is not NAME=VALUE"),
        ("FREQ=DAILY;COUNT=5000", "COUNT must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;BYHOUR=24", "not a valid RRULE: hour must be in 0..23"),
        ("FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31", "the rule's days never exist"),
        # Rules dateutil would search day by day until the year 9999 (seconds of CPU):
        ("FREQ=DAILY;BYSETPOS=2", "BYSETPOS goes with FREQ=MONTHLY or YEARLY"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5", "BYSETPOS must be from 1 to 4"),
        ("FREQ=MONTHLY;BYDAY=6MO", "a BYDAY position is at most 5 here"),
        ("FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=8", "or BYMONTHDAY, not both"),
        ("FREQ=WEEKLY;BYDAY=2MO", "needs FREQ=MONTHLY or YEARLY"),
        ("FREQ=WEEKLY;UNTIL=2026-04-30", "UNTIL is a date"),
        ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL must be a whole number from 1 to 366"),
        ("FREQ=DAILY;BYMONTH=13", "BYMONTH takes months from 1 to 12"),
        ("FREQ=DAILY;BYMONTHDAY=0", "BYMONTHDAY takes days from 1 to 31"),
        ("FREQ=WEEKLY;INTERVAL=-2", "INTERVAL must be a whole number"),
    ],
)
def test_rules_refused_with_why(given: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        checked_rule(given)


def test_ten_oclock_local_stays_ten_oclock_across_both_dst_changes() -> None:
    rule = Recurrence("FREQ=WEEKLY;BYDAY=SU;BYHOUR=10;BYMINUTE=0", datetime(2026, 3, 1), NEW_YORK)
    walls = list(rule.between(datetime(2026, 2, 28), datetime(2026, 3, 16)))
    assert walls == [datetime(2026, 3, 1, 10), datetime(2026, 3, 8, 10), datetime(2026, 3, 15, 10)]
    # 10:00 EST is 15:00Z; from March 8th (DST), 10:00 EDT is 14:00Z.
    assert [rule.instant(wall).hour for wall in walls] == [15, 14, 14]
    autumn = Recurrence(rule.rule, datetime(2026, 10, 25), NEW_YORK)
    first = autumn.first()
    assert first is not None
    second = autumn.after(first)
    assert second is not None
    assert (autumn.instant(first).hour, autumn.instant(second).hour) == (14, 15)


@pytest.mark.parametrize(
    ("until", "local"),
    [
        ("20260430", "20260430T235959"),  # a date: that whole local day
        ("20260430T120000Z", "20260430T080000"),  # an instant: New York's wall time (EDT)
        ("20260430T090000", "20260430T090000"),  # a local wall time: as given
    ],
)
def test_until_is_read_as_local_time(until: str, local: str) -> None:
    assert until_in_zone(f"FREQ=DAILY;UNTIL={until}", NEW_YORK) == f"FREQ=DAILY;UNTIL={local}"


def test_the_start_is_scheduled_in_local_time_or_now_to_the_minute() -> None:
    now = datetime(2026, 3, 2, 15, 0, 37, tzinfo=UTC)
    assert start_wall(None, NEW_YORK, now) == datetime(2026, 3, 2, 10, 0)
    assert start_wall(datetime(2026, 3, 3, 9, 15), NEW_YORK, now) == datetime(2026, 3, 3, 9, 15)
    aware = datetime(2026, 3, 3, 14, 15, tzinfo=UTC)
    assert start_wall(aware, NEW_YORK, now) == datetime(2026, 3, 3, 9, 15)


def place(rule: str, calling: CallingPolicy, ledger: CapacityLedger | None = None) -> object:
    recurrence = Recurrence(checked_rule(rule), datetime(2026, 3, 2, 10, 0), NEW_YORK)
    ledger = ledger or CapacityLedger(calling.max_calls_per_minute)
    return place_next(recurrence, recurrence.first(), ANN, calling, ledger, now=MONDAY_10_EST)


def test_an_occurrence_at_an_allowed_time_goes_at_that_time() -> None:
    placed = place("FREQ=WEEKLY;BYDAY=MO;BYHOUR=10", CallingPolicy())
    assert isinstance(placed, Placed)
    assert (placed.planned.at, placed.following) == (MONDAY_10_EST, datetime(2026, 3, 9, 10, 0))


def test_a_full_minute_moves_it_to_the_next_free_one() -> None:
    calling = CallingPolicy(max_calls_per_minute=1)
    ledger = CapacityLedger(1, {int(MONDAY_10_EST.timestamp()) // 60: 1})
    placed = place("FREQ=WEEKLY;BYDAY=MO;BYHOUR=10", calling, ledger)
    assert isinstance(placed, Placed)
    assert placed.planned.at == datetime(2026, 3, 2, 15, 1, tzinfo=UTC)


def test_an_occurrence_beyond_the_horizon_waits_until_it_comes_inside() -> None:
    placed = place("FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=10", CallingPolicy(horizon_days=14))
    assert isinstance(placed, Waiting)
    # April 1st 10:00 EDT is 14:00Z; it is within 14 days from March 18th 14:01Z.
    assert (placed.wall, placed.wake_at) == (
        datetime(2026, 4, 1, 10, 0), datetime(2026, 3, 18, 14, 1, tzinfo=UTC))  # fmt: skip


def test_a_rule_with_nothing_left_is_exhausted() -> None:
    recurrence = Recurrence("FREQ=DAILY;COUNT=1", datetime(2026, 3, 2, 10, 0), NEW_YORK)
    ledger = CapacityLedger(100)
    assert place_next(recurrence, None, ANN, CallingPolicy(), ledger, now=MONDAY_10_EST) == (
        Exhausted(0)
    )


_NAMES = ["FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR",
          "BYMINUTE", "BYSETPOS", "WKST", "BYSECOND"]  # fmt: skip
_VALUES = ["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", "0", "1", "2", "-1", "5", "13",
           "29", "31", "-31", "53", "60", "MO", "2TU", "-1FR", "MO,TU", "20260430",
           "20260430T120000Z", "2026-04-30", "x", "", "1,2", "+3", "-0", "0,1"]  # fmt: skip
_RULES = st.lists(
    st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES)), min_size=1, max_size=5
).map(lambda parts: ";".join(f"{name}={value}" for name, value in parts))


@settings(max_examples=300, deadline=None)
@given(rule=_RULES | st.text(max_size=60))
def test_any_text_is_a_kept_rule_or_a_value_error(rule: str) -> None:
    """Whatever a caller sends is a rule that then yields its occurrences, or a refusal in
    words, never another exception (a 500) now or when the series moves on."""
    try:
        kept = checked_rule(rule)
    except ValueError:
        return
    recurrence = Recurrence(kept, datetime(2026, 3, 2, 10, 0), NEW_YORK)
    first = recurrence.first_from(MONDAY_10_EST)
    if first is not None:
        recurrence.after(first)
        recurrence.instant(first)
