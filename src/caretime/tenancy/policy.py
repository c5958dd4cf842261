"""Per-tenant policy: one JSON document, validated here, with a section per part of the product.

Domains read their section (`policy.calling`, `policy.booking`, `policy.shifts`); the values
are data, never code, so a tenant's rules can be shown, diffed and changed through the API.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> timedelta:
    """'10m', '2h', '90s', '1d' (or a timedelta / seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("expected a duration such as '30s', '10m', '2h' or '1d'")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


# The longest IANA name is 32 characters; a longer one is refused before the file system is
# asked (a 5,000-character name made ZoneInfo raise OSError: file name too long).
MAX_ZONE_NAME = 64


def validate_zone(name: str) -> str:
    if len(name) > MAX_ZONE_NAME:
        raise ValueError(f"unknown IANA time zone {name[:40]!r}...: names are short")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


def parse_local_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError("expected a local time as HH:MM, e.g. 09:00") from exc


# Wall-clock time with no zone: "09:00". (JSON Schema's "time" format demands an offset.)
LocalTime = Annotated[
    time,
    BeforeValidator(parse_local_time),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "examples": ["09:00"]}),
]

IanaZone = Annotated[str, BeforeValidator(lambda v: validate_zone(str(v)))]
PurposeName = Annotated[str, StringConstraints(max_length=64)]
ScriptText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class LocalWindow(BaseModel):
    """A span of local wall-clock time within one day, e.g. 09:00–17:00."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _ordered(self) -> LocalWindow:
        if self.end <= self.start:
            raise ValueError("a window must end after it starts")
        return self


def _every_day(start: str, end: str) -> dict[Weekday, list[LocalWindow]]:
    window = LocalWindow(start=time.fromisoformat(start), end=time.fromisoformat(end))
    return {day: [window] for day in WEEKDAYS}


class CallingPolicy(BaseModel):
    """When and how often outreach may call (the legal limits are applied on top, always)."""

    model_config = ConfigDict(extra="forbid")
    windows: dict[Weekday, list[LocalWindow]] = Field(
        default_factory=lambda: _every_day("09:00", "17:00")
    )
    skip_holidays: bool = True
    holiday_country: str = "US"
    max_calls_per_minute: int = Field(default=100, ge=1, le=100_000)
    strategy: Literal["earliest", "spread"] = "earliest"
    horizon_days: int = Field(default=14, ge=1, le=90)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_delay: Duration = timedelta(minutes=15)
    max_attempts_per_day: int = Field(default=3, ge=1)
    max_attempts_per_week: int = Field(default=10, ge=1)
    default_tz: IanaZone | None = None
    # What a call says when its item gave no script, by purpose ("" for calls without one).
    scripts: dict[PurposeName, ScriptText] = Field(default_factory=dict, max_length=100)
    # When a machine answers: hang up (the call ends), leave the message below (it ends),
    # or hang up and try again later (an attempt like an unanswered one).
    voicemail: Literal["hang_up", "leave_message", "retry"] = "retry"
    # PHI-free: said to whoever plays the mailbox back; {callback_number} is filled in.
    voicemail_message: ScriptText = (
        "Hello, this is a message from your care team. Please call us back at "
        "{callback_number}. Thank you."
    )
    callback_number: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _message_can_be_left(self) -> CallingPolicy:
        if self.voicemail == "leave_message" and not self.callback_number:
            raise ValueError('voicemail "leave_message" needs a callback_number to leave')
        return self


class BookingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot_minutes: int = Field(default=15, ge=5, le=240)
    hold: Duration = timedelta(minutes=30)
    min_notice: Duration = timedelta(hours=24)

    @field_validator("slot_minutes")
    @classmethod
    def _divides_the_day(cls, value: int) -> int:
        if (24 * 60) % value:
            raise ValueError("slot_minutes must divide a day evenly (e.g. 10, 15, 20, 30, 60)")
        return value


class EscalationRound(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["sms", "voice"]
    after: Duration


class ShiftPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    escalation: list[EscalationRound] = Field(
        default_factory=lambda: [
            EscalationRound(channel="sms", after=timedelta(0)),
            EscalationRound(channel="voice", after=timedelta(minutes=10)),
        ],
        min_length=1,
    )
    # Shifts without their own zone are described to caregivers in this one.
    default_tz: IanaZone = "America/New_York"

    @field_validator("escalation")
    @classmethod
    def _rounds_in_order(cls, rounds: list[EscalationRound]) -> list[EscalationRound]:
        delays = [r.after for r in rounds]
        if delays != sorted(delays):
            raise ValueError("escalation rounds must be listed in order of their delay")
        return rounds


class RetentionPolicy(BaseModel):
    """How long what is finished is kept before the daily prune deletes it (None: forever)."""

    model_config = ConfigDict(extra="forbid")
    finished_jobs: Duration = timedelta(days=7)
    messages: Duration = timedelta(days=400)
    events: Duration = timedelta(days=400)
    # Cancelled and expired calls and appointments are kept unless the tenant says otherwise.
    ended_calls: Duration | None = None
    ended_appointments: Duration | None = None


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calling: CallingPolicy = Field(default_factory=CallingPolicy)
    booking: BookingPolicy = Field(default_factory=BookingPolicy)
    shifts: ShiftPolicy = Field(default_factory=ShiftPolicy)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)


def merge_policy(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396): objects merge key by key, null removes, others replace."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_policy(merged[key], value)
        else:
            merged[key] = value
    return merged
