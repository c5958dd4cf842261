import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from caretime.policy.planner import CapacityLedger, PlanItem, Planner, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
SAMPLE = Path(__file__).parents[1] / "outreach" / "data" / "schedule-sample-payload.json"


def ny_numbers(count: int, *, exchange: int = 555) -> list[PlanItem]:
    return [PlanItem(name=f"P{i}", phone=f"212-{exchange}-{i:04d}") for i in range(count)]


def minute_of(at: datetime) -> int:
    return int(at.timestamp()) // 60


def scheduled(outcomes: list) -> list[Scheduled]:
    return [o for o in outcomes if isinstance(o, Scheduled)]


def test_the_sample_payload_schedules_the_first_and_rejects_the_undialable_second() -> None:
    items = [PlanItem(**item) for item in json.loads(SAMPLE.read_text())]
    first, second = Planner(CallingPolicy(), now=NOW).plan(items)
    # 206 is Seattle: 09:00 Pacific on Monday is 17:00 UTC.
    assert first == Scheduled(
        "+12065555555", "America/Los_Angeles", ("America/Los_Angeles",),
        datetime(2026, 3, 2, 17, 0, tzinfo=UTC), pinned=False,
    )  # fmt: skip
    assert second == Rejected("invalid_phone", "not a valid phone number")


def test_capacity_is_never_exceeded_in_any_minute_across_batches() -> None:
    policy = CallingPolicy(max_calls_per_minute=100)
    first = Planner(policy, now=NOW).plan(ny_numbers(150))
    existing = Counter(minute_of(o.at) for o in scheduled(first))
    ledger = CapacityLedger.starting_with(100, existing)
    second = Planner(policy, now=NOW, ledger=ledger).plan(ny_numbers(130, exchange=556))
    per_minute = Counter(minute_of(o.at) for o in scheduled(first) + scheduled(second))
    assert sorted(per_minute.values()) == [80, 100, 100]
    # The second batch continues where the first left off: half-way through 15:01.
    assert min(o.at for o in scheduled(second)) == NOW + timedelta(seconds=90)


def test_earliest_packs_the_first_minutes_and_spaces_calls_within_a_minute() -> None:
    outcomes = Planner(CallingPolicy(max_calls_per_minute=4), now=NOW).plan(ny_numbers(6))
    offsets = [(o.at - NOW).total_seconds() for o in scheduled(outcomes)]
    assert offsets == [0, 15, 30, 45, 60, 75]


def test_spread_places_calls_evenly_across_the_window() -> None:
    policy = CallingPolicy(strategy="spread")
    outcomes = Planner(policy, now=NOW).plan(ny_numbers(7))
    # The window today is 15:00-22:00 UTC (420 minutes): one call every hour.
    assert [o.at.hour for o in scheduled(outcomes)] == [15, 16, 17, 18, 19, 20, 21]


def test_spread_uses_only_the_windows_it_needs_evenly() -> None:
    policy = CallingPolicy(strategy="spread", max_calls_per_minute=1)
    outcomes = Planner(policy, now=NOW).plan(ny_numbers(500))
    days = Counter(o.at.date().isoformat() for o in scheduled(outcomes))
    # 500 calls need Monday (420 free minutes) and Tuesday (480): shared in that proportion.
    assert days == {"2026-03-02": 234, "2026-03-03": 266}


@pytest.mark.parametrize(
    ("scheduled_at", "tz", "expected"),
    [
        ("2026-03-02T18:30:00+00:00", None, "2026-03-02T18:30:00+00:00"),
        ("2026-03-02T13:30:00", None, "2026-03-02T18:30:00+00:00"),  # naive = local time
        ("2026-03-02T13:30:00", "America/Chicago", "2026-03-02T19:30:00+00:00"),
        ("2026-03-03T12:00:00+00:00", None, "07:00 local time in America/New_York is outside"),
        ("2026-03-01T12:00:00+00:00", None, "in the past"),
        ("2026-04-01T15:00:00+00:00", None, "beyond the 14-day planning horizon"),
    ],
)  # fmt: skip
def test_pinned_times_are_kept_when_allowed_and_rejected_with_a_reason_otherwise(
    scheduled_at: str, tz: str | None, expected: str
) -> None:
    item = PlanItem("P", "212-555-0100", datetime.fromisoformat(scheduled_at), tz)
    (outcome,) = Planner(CallingPolicy(), now=NOW).plan([item])
    if isinstance(outcome, Scheduled):
        assert (outcome.at, outcome.pinned) == (datetime.fromisoformat(expected), True)
    else:
        assert expected in outcome.error


def test_a_pinned_time_on_a_holiday_says_so() -> None:
    item = PlanItem("P", "212-555-0100", datetime(2026, 5, 25, 15, tzinfo=UTC))
    policy = CallingPolicy(horizon_days=90)
    (outcome,) = Planner(policy, now=NOW).plan([item])
    assert isinstance(outcome, Rejected)
    assert "2026-05-25 is Memorial Day" in outcome.error


def test_pinned_times_do_not_overfill_a_minute() -> None:
    at = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    items = [PlanItem(f"P{i}", f"212-555-{i:04d}", at) for i in range(3)]
    outcomes = Planner(CallingPolicy(max_calls_per_minute=2), now=NOW).plan(items)
    assert [o.status for o in outcomes] == ["scheduled", "scheduled", "rejected"]
    assert "is full (2 calls per minute)" in outcomes[2].error


def test_naive_pinned_time_for_a_multi_zone_number_is_ambiguous() -> None:
    item = PlanItem("P", "208-200-0100", datetime(2026, 3, 2, 10, 0))
    (outcome,) = Planner(CallingPolicy(), now=NOW).plan([item])
    assert isinstance(outcome, Rejected)
    assert "spans several time zones" in outcome.error


def test_items_beyond_the_horizon_are_rejected_with_the_reason() -> None:
    policy = CallingPolicy(max_calls_per_minute=1, horizon_days=1)
    outcomes = Planner(policy, now=NOW).plan(ny_numbers(500))
    # Monday 15:00-22:00 (420 minutes) and Tuesday 14:00-15:00 (60) fit before the horizon.
    assert len(scheduled(outcomes)) == 480
    assert outcomes[-1] == Rejected(
        "capacity_full",
        "no free calling time in the next 1 days: the allowed windows are full at 1 calls "
        "per minute",
    )


@pytest.mark.parametrize(
    ("tz", "default_tz", "expected"),
    [
        (None, None, "toll-free or non-geographic number whose time zone is unknown"),
        ("America/Denver", None, "America/Denver"),
        (None, "America/Chicago", "America/Chicago"),
        ("America/Denver", "America/Chicago", "America/Denver"),
        ("Mars/Olympus_Mons", None, "unknown time zone 'Mars/Olympus_Mons'"),
    ],
)
def test_toll_free_numbers_need_a_zone_from_the_item_or_the_tenant(
    tz: str | None, default_tz: str | None, expected: str
) -> None:
    policy = CallingPolicy(default_tz=default_tz)
    (outcome,) = Planner(policy, now=NOW).plan([PlanItem("P", "800-555-0100", tz=tz)])
    assert expected in (outcome.tz if isinstance(outcome, Scheduled) else outcome.error)


def test_an_explicit_zone_wins_over_the_inferred_one() -> None:
    (outcome,) = Planner(CallingPolicy(), now=NOW).plan(
        [PlanItem("P", "212-555-0100", tz="America/Los_Angeles")]
    )
    assert isinstance(outcome, Scheduled)
    assert (outcome.tz, outcome.at.hour) == ("America/Los_Angeles", 17)


def test_a_number_twice_in_a_batch_is_called_once() -> None:
    items = [PlanItem("A", "212-555-0100"), PlanItem("B", "+1 (212) 555-0100")]
    outcomes = Planner(CallingPolicy(), now=NOW).plan(items)
    assert outcomes[1] == Rejected(
        "duplicate",
        "the same number is already in this batch at item 0 "
        '(send "allow_duplicate": true to call it twice)',
        same_as=0,
    )


@pytest.mark.parametrize(
    ("second", "planned"),
    [
        (PlanItem("B", "212-555-0100", purpose="flu"), True),
        (PlanItem("B", "212-555-0100", allow_duplicate=True), True),
        (PlanItem("B", "212-555-0100", purpose=""), False),
    ],
)
def test_a_number_is_planned_once_per_purpose_unless_duplicates_are_allowed(
    second: PlanItem, planned: bool
) -> None:
    outcomes = Planner(CallingPolicy(), now=NOW).plan([PlanItem("A", "212-555-0100"), second])
    assert isinstance(outcomes[1], Scheduled) is planned


def test_a_tenant_without_windows_gets_the_rules_in_the_rejection() -> None:
    (outcome,) = Planner(CallingPolicy(windows={}), now=NOW).plan(ny_numbers(1))
    assert isinstance(outcome, Rejected)
    assert outcome.error.startswith("no allowed calling time in the next 14 days (tenant")


def test_planning_is_deterministic() -> None:
    items = [*ny_numbers(50), PlanItem("Z", "208-200-0100"), PlanItem("Y", "850-200-0100")]
    for strategy in ("earliest", "spread"):
        policy = CallingPolicy(strategy=strategy, max_calls_per_minute=3)
        assert Planner(policy, now=NOW).plan(items) == Planner(policy, now=NOW).plan(items)
