"""Durations as people write them ('15m', '1h30m', ISO 8601 'PT15M', or seconds), bounded.

Every duration a caller can store (policy, per-call and per-batch overrides) goes through
`parse_duration`, which refuses what later arithmetic cannot use (negative, NaN, overflow),
and through a field's `DurationBounds`, which refuses what makes no sense for that field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# Beyond this no duration is meaningful, and timedelta arithmetic on dates may overflow.
LONGEST = timedelta(days=3650)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_ISO = re.compile(
    r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE
)
EXPECTED = "expected a duration such as '30s', '10m', '1h30m', '2d' or ISO 8601 'PT15M'"


def parse_duration(value: Any, *, at_most: timedelta = LONGEST) -> timedelta:
    """'10m', '1h30m', 'PT15M', 'P1D' (or a timedelta, or a number of seconds) → timedelta."""
    if isinstance(value, timedelta):
        return _checked(value.total_seconds(), at_most)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _checked(float(value), at_most)
    if not isinstance(value, str):
        raise ValueError(EXPECTED)
    return _checked(_text_seconds(value.strip()), at_most)


def _text_seconds(text: str) -> float:
    match = _SHORT.match(text) if text and not text.upper().startswith("P") else None
    match = match or (_ISO.match(text) if text.upper() not in ("P", "PT") else None)
    if match is None or not any(match.groups()) or text.upper().endswith("T"):
        raise ValueError(EXPECTED)
    sizes = _UNIT_SECONDS.values()
    return sum(float(part) * size for part, size in zip(match.groups(), sizes, strict=True) if part)


def _checked(seconds: float, at_most: timedelta) -> timedelta:
    # Compared as a number first: timedelta(seconds=1e308) itself would overflow.
    if math.isnan(seconds):
        raise ValueError(EXPECTED)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > at_most.total_seconds():
        raise ValueError(f"must be at most {format_duration(at_most)}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class DurationBounds:
    """The range a duration field accepts, e.g. a hold of 1 minute to 7 days."""

    at_least: timedelta
    at_most: timedelta

    def __call__(self, value: Any) -> timedelta:
        duration = parse_duration(value, at_most=self.at_most)
        if duration < self.at_least:
            raise ValueError(f"must be at least {format_duration(self.at_least)}")
        return duration

    def describe(self) -> str:
        low, high = format_duration(self.at_least), format_duration(self.at_most)
        return f"A duration from {low} to {high}: '15m', '1h30m', '2d', ISO 8601 'PT15M'."


def duration_schema(bounds: DurationBounds | None = None) -> dict[str, Any]:
    text = bounds.describe() if bounds else "A duration: '15m', '1h30m', '2d', ISO 8601 'PT15M'."
    return {
        "anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}],
        "description": text + " A number is seconds.",
        "examples": ["15m", "PT15M"],
    }


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(duration_schema()),
]

# A bounded duration field is `Annotated[Duration, BeforeValidator(bounds), WithJsonSchema(...)]`:
# the outer validator runs first, so the bound's own message names the field's limit.
MINUTE, WEEK = timedelta(minutes=1), timedelta(days=7)
# A retry sooner than a minute hammers a phone; later than a week is a new campaign.
RETRY_DELAY_BOUNDS = DurationBounds(MINUTE, WEEK)
RetryDelay = Annotated[
    Duration,
    BeforeValidator(RETRY_DELAY_BOUNDS),
    WithJsonSchema(duration_schema(RETRY_DELAY_BOUNDS)),
]
