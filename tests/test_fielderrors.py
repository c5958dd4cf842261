"""Validation errors in the caller's words: internal parts of pydantic's locations and
messages never reach a response."""

from __future__ import annotations

from typing import Any

import pytest

from caretime.fielderrors import field_errors


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"loc": ("body", "list[union[WeeklyTemplateIn,DatedWindowIn]]", 0, "WeeklyTemplateIn",
                     "weekdays"), "msg": "Field required", "type": "missing"},
            {"loc": ["body", 0, "weekdays"], "msg": "Field required"},
        ),
        (
            {"loc": ("body", 1), "msg": "Input should be a valid dictionary or instance of "
             "DatedWindowIn", "type": "model_type"},
            {"loc": ["body", 1], "msg": "expected a JSON object"},
        ),
        (
            {"loc": ("body", "hold", "function-before[parse_duration(), timedelta]"),
             "msg": "Value error, must be at most 7d", "type": "value_error"},
            {"loc": ["body", "hold"], "msg": "must be at most 7d"},
        ),
        (
            {"loc": ("query", "status"), "msg": "Input should be 'open' or 'filled'",
             "type": "literal_error"},
            {"loc": ["query", "status"], "msg": "Input should be 'open' or 'filled'"},
        ),
    ],
)  # fmt: skip
def test_errors_are_said_in_the_callers_terms(
    error: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert field_errors([error]) == [expected]


def test_the_same_error_twice_is_reported_once() -> None:
    error = {"loc": ("body", "WeeklyTemplateIn", "start"), "msg": "bad", "type": "value_error"}
    other = {"loc": ("body", "DatedWindowIn", "start"), "msg": "bad", "type": "value_error"}
    assert field_errors([error, other], prefix=("x",)) == [
        {"loc": ["x", "body", "start"], "msg": "bad"}
    ]
