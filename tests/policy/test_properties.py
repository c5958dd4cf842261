"""Property: whatever the input, no call is ever placed outside the legal hours in any of the
number's zones, nor outside the tenant's windows, nor over capacity."""

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from caretime.policy.legal import rules_for
from caretime.policy.planner import PlanItem, Planner, Scheduled
from caretime.policy.windows import day_verdict
from caretime.tenancy.policy import WEEKDAYS, CallingPolicy, LocalWindow

# Prefixes chosen to cover single zones, multi-zone exchanges and state rules.
PREFIXES = ["212555", "206555", "208200", "928283", "850200", "305555", "405555", "205555",
            "504555", "808555", "907555", "601555", "701201"]  # fmt: skip

minutes_of_day = st.integers(0, 24 * 60 - 2)


@st.composite
def windows(draw: st.DrawFn) -> dict[str, list[LocalWindow]]:
    result = {}
    for day in draw(st.lists(st.sampled_from(WEEKDAYS), unique=True, min_size=1)):
        start = draw(minutes_of_day)
        end = draw(st.integers(start + 1, 24 * 60 - 1))
        result[day] = [LocalWindow(start=_time(start), end=_time(end))]
    return result


def _time(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


phones = st.builds(
    lambda prefix, line: f"{prefix}{line:04d}", st.sampled_from(PREFIXES), st.integers(0, 9999)
)
# A pinned time as an offset from "now" (seconds), so many pinned items fall in the horizon.
offsets = st.none() | st.integers(-3600, 4 * 24 * 3600)


@settings(max_examples=300, deadline=None)
@given(
    batch=st.lists(st.tuples(phones, offsets), min_size=10, max_size=40),
    tenant_windows=windows(),
    strategy=st.sampled_from(["earliest", "spread"]),
    capacity=st.integers(1, 4),
    now=st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 28), timezones=st.just(UTC)),
)
def test_no_call_is_ever_outside_the_legal_hours_or_the_tenant_window_or_capacity(
    batch: list[tuple[str, int | None]],
    tenant_windows: dict[str, list[LocalWindow]],
    strategy: str,
    capacity: int,
    now: datetime,
) -> None:
    policy = CallingPolicy(
        windows=tenant_windows, strategy=strategy, max_calls_per_minute=capacity, horizon_days=3
    )
    planner = Planner(policy, now=now)
    outcomes = planner.plan(
        [
            PlanItem("P", phone, None if o is None else now + timedelta(seconds=o))
            for phone, o in batch
        ]
    )
    placed = [o for o in outcomes if isinstance(o, Scheduled)]
    for outcome in placed:
        state = planner.phones.parse(outcome.e164).state
        assert now <= outcome.at < now + timedelta(days=3)
        for zone in outcome.zones:
            local = outcome.at.astimezone(ZoneInfo(zone))
            assert time(8) <= local.time() < time(21)
            assert any(
                w.start <= local.time() < w.end
                for w in tenant_windows.get(WEEKDAYS[local.weekday()], [])
            )
            verdict = day_verdict(local.date(), policy, rules_for(state), state)
            assert any(lo <= local.time() < hi for lo, hi in verdict.spans)
    per_minute = Counter(int(o.at.timestamp()) // 60 for o in placed)
    assert all(count <= capacity for count in per_minute.values())
