"""The escalation ladder is data: rounds, channels, due times, and the cut-off at shift start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from caretime.shifts.ladder import (
    Round,
    due_at,
    from_document,
    next_round,
    rounds_before,
    rounds_of,
    to_document,
)
from caretime.tenancy.policy import ShiftPolicy

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
DEFAULT = rounds_of(ShiftPolicy().escalation)


def test_default_ladder_is_sms_now_then_voice_at_ten_minutes() -> None:
    assert [
        Round(1, "sms", timedelta(0)),
        Round(2, "voice", timedelta(minutes=10)),
    ] == DEFAULT


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0, 1), (1, 2), (2, None), (5, None)],
)
def test_next_round(number: int, expected: int | None) -> None:
    following = next_round(DEFAULT, number)
    assert (following.number if following else None) == expected


@pytest.mark.parametrize(
    ("starts_in", "rounds"),
    [
        (timedelta(hours=2), [1, 2]),
        (timedelta(minutes=11), [1, 2]),
        (timedelta(minutes=10), [1]),
        (timedelta(minutes=1), [1]),
    ],
)
def test_rounds_due_at_or_after_the_shift_start_are_dropped(
    starts_in: timedelta, rounds: list[int]
) -> None:
    assert [r.number for r in rounds_before(DEFAULT, T0, T0 + starts_in)] == rounds


def test_due_at_counts_from_the_fanout_start() -> None:
    assert due_at(T0, DEFAULT[1]) == T0 + timedelta(minutes=10)


def test_snapshot_round_trips() -> None:
    ladder = rounds_of(
        ShiftPolicy.model_validate(
            {
                "escalation": [
                    {"channel": "sms", "after": "0m"},
                    {"channel": "sms", "after": "5m"},
                    {"channel": "voice", "after": "1h"},
                ]
            }
        ).escalation
    )
    assert to_document(ladder) == {
        "rounds": [
            {"channel": "sms", "after": "0s"},
            {"channel": "sms", "after": "5m"},
            {"channel": "voice", "after": "1h"},
        ]
    }
    assert from_document(to_document(ladder)) == ladder


def test_rounds_must_be_in_order() -> None:
    with pytest.raises(ValidationError):
        ShiftPolicy.model_validate(
            {
                "escalation": [
                    {"channel": "voice", "after": "10m"},
                    {"channel": "sms", "after": "0m"},
                ]
            }
        )
