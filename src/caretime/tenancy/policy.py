"""Per-tenant policy: one JSON document, validated here, with a section per part of the product.

Domains read their section (`policy.calling`, `policy.booking`, `policy.shifts`); the values
are data, never code, so a tenant's rules can be shown, diffed and changed through the API.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from caretime.tenancy.durations import (
    MINUTE,
    WEEK,
    Duration,
    DurationBounds,
    RetryDelay,
    duration_schema,
    format_duration,
    parse_duration,
)

__all__ = ["Duration", "RetryDelay", "format_duration", "parse_duration"]

HOLD_BOUNDS = DurationBounds(MINUTE, WEEK)
NOTICE_BOUNDS = DurationBounds(timedelta(0), timedelta(days=90))
# A round later than a week would fall after nearly any shift it is meant to fill.
ESCALATION_BOUNDS = DurationBounds(timedelta(0), WEEK)
HoldLength = Annotated[
    Duration, BeforeValidator(HOLD_BOUNDS), WithJsonSchema(duration_schema(HOLD_BOUNDS))
]
Notice = Annotated[
    Duration, BeforeValidator(NOTICE_BOUNDS), WithJsonSchema(duration_schema(NOTICE_BOUNDS))
]
# A reminder more than a month ahead reminds nobody; a wave gap over a day outlives the offer.
REMINDER_BOUNDS = DurationBounds(MINUTE, timedelta(days=30))
WAVE_GAP_BOUNDS = DurationBounds(MINUTE, timedelta(days=1))
ReminderLead = Annotated[
    Duration, BeforeValidator(REMINDER_BOUNDS), WithJsonSchema(duration_schema(REMINDER_BOUNDS))
]
WaveGap = Annotated[
    Duration, BeforeValidator(WAVE_GAP_BOUNDS), WithJsonSchema(duration_schema(WAVE_GAP_BOUNDS))
]
EscalationDelay = Annotated[
    Duration,
    BeforeValidator(ESCALATION_BOUNDS),
    WithJsonSchema(duration_schema(ESCALATION_BOUNDS)),
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


def known_holiday_country(country: str) -> str:
    code = country.strip().upper()
    if code not in holidays.list_supported_countries():
        raise ValueError(f"unknown holiday country {country!r}: use an ISO code such as US")
    return code


def known_subdivision(country: str, subdivision: str) -> str:
    names = {name.upper(): name for name in holidays.list_supported_countries()[country]}
    match = names.get(subdivision.strip().upper())
    if match is None:
        raise ValueError(f"{country}'s holiday calendar has no subdivision {subdivision!r}")
    return match


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
    holiday_country: str = Field(
        default="US", description="A country the `holidays` library knows (ISO 3166 code)."
    )
    holiday_subdivision: str | None = Field(
        default=None, description="One of the country's states or regions, e.g. CA for the US."
    )
    max_calls_per_minute: int = Field(default=100, ge=1, le=100_000)
    strategy: Literal["earliest", "spread"] = "earliest"
    horizon_days: int = Field(default=14, ge=1, le=90)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_delay: RetryDelay = timedelta(minutes=15)
    max_attempts_per_day: int = Field(default=3, ge=1, le=100)
    max_attempts_per_week: int = Field(default=10, ge=1, le=700)
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

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        return known_holiday_country(country)

    @field_validator("holiday_subdivision")
    @classmethod
    def _known_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("holiday_country")
        if subdivision is None or country is None:  # no country: its own error says why
            return subdivision
        return known_subdivision(country, subdivision)


class Reminder(BaseModel):
    """A reminder this long before a visit; "24h" is short for {"before": "24h"}."""

    model_config = ConfigDict(extra="forbid")
    before: ReminderLead
    channel: Literal["sms", "voice"] = "sms"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"before": value} if isinstance(value, str | int | timedelta) else value

    @model_serializer(mode="wrap")
    def _as_shorthand(self, handler: SerializerFunctionWrapHandler) -> Any:
        return format_duration(self.before) if self.channel == "sms" else handler(self)


class QuietHoursPolicy(BaseModel):
    """No contact from `start` to `end` in the person's local time (may cross midnight)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: LocalTime = time(21, 0)
    end: LocalTime = time(8, 0)


class BookingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot_minutes: int = Field(default=15, ge=5, le=240)
    hold: HoldLength = timedelta(minutes=30)
    min_notice: Notice = timedelta(hours=24)
    # Date-only ranges over several providers (e.g. GET /appointments?start=2026-03-10) are
    # local days of this zone; with one provider, of the provider's.
    default_tz: IanaZone = "America/New_York"
    # A held visit that moves keeps its deadline (False) or gets a fresh hold (True).
    reschedule_renews_hold: bool = False
    reminders: list[Reminder] = Field(
        default_factory=lambda: [
            Reminder(before=timedelta(hours=24)),
            Reminder(before=timedelta(hours=2)),
        ],
        max_length=5,
    )
    # Patients' quiet hours for reminders, in the zones of their phone number.
    quiet_hours: QuietHoursPolicy = Field(default_factory=QuietHoursPolicy)
    # After a no-show, text the patient offering to rebook.
    no_show_followup: bool = True
    # A freed time goes to this many waitlisted patients at once, the next ones after the gap.
    waitlist_wave_size: int = Field(default=5, ge=1, le=500)
    waitlist_wave_gap: WaveGap = timedelta(minutes=10)

    @field_validator("slot_minutes")
    @classmethod
    def _divides_the_day(cls, value: int) -> int:
        if (24 * 60) % value:
            raise ValueError("slot_minutes must divide a day evenly (e.g. 10, 15, 20, 30, 60)")
        return value


class EscalationRound(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["sms", "voice"]
    after: EscalationDelay
    # Only caregivers of these tiers (1 = preferred); absent: everyone. A tiered round skips
    # whoever this fan-out already offered on the same channel (waves widen, not repeat).
    tiers: list[Annotated[int, Field(ge=1, le=9)]] | None = Field(
        default=None, min_length=1, max_length=9
    )


ShiftAlertKind = Literal[
    "unfilled", "expired_unfilled", "dropped", "filled", "question", "overtime"
]

DEFAULT_ALERT_KINDS: tuple[ShiftAlertKind, ...] = (
    "unfilled",
    "expired_unfilled",
    "dropped",
    "question",
    "overtime",
)


def _coordinator_phone(value: str) -> str:
    # phonenumbers directly: caretime.policy imports this module, so it cannot be used here.
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a dialable phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class ShiftAlert(BaseModel):
    """A coordinator's phone and the shift events it is texted about."""

    model_config = ConfigDict(extra="forbid")
    phone: Annotated[str, Field(max_length=40), AfterValidator(_coordinator_phone)]
    # Every kind but `filled` unless chosen: a coordinator wants to hear of trouble.
    events: list[ShiftAlertKind] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_KINDS), min_length=1
    )


class ShiftPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    escalation: list[EscalationRound] = Field(
        default_factory=lambda: [
            EscalationRound(channel="sms", after=timedelta(0)),
            EscalationRound(channel="voice", after=timedelta(minutes=10)),
        ],
        min_length=1,
        max_length=10,
    )
    # Shifts without their own zone are described to caregivers in this one.
    default_tz: IanaZone = "America/New_York"
    # A dropped shift is fanned out again at once (auto) or when a coordinator says (manual).
    refill: Literal["auto", "manual"] = "auto"
    # Cancelling a shift always tells its assignee; this also tells everyone with a live offer.
    cancel_notifies_offered: bool = False
    # Caregivers are never contacted (SMS or voice) inside these, in their own zone; an
    # offer waits for their end, except an SMS for a shift that starts before they end when
    # urgent_overrides_quiet is set (a call never overrides them).
    quiet_hours: QuietHoursPolicy = Field(default_factory=QuietHoursPolicy)
    urgent_overrides_quiet: bool = False
    # Coordinators texted about shift events; `unfilled` fires when the ladder is spent and
    # when the shift is `unfilled_alert_before` from its start, still open.
    alerts: list[ShiftAlert] = Field(default_factory=list, max_length=20)
    unfilled_alert_before: Duration = timedelta(hours=2)
    # The overtime guard's week: starts on this day at 00:00 in default_tz.
    week_starts: Weekday = "sun"
    # A filled shift that changes is released unless its assignee replies YES within this.
    reconfirm_within: Duration = timedelta(hours=2)

    @field_validator("escalation")
    @classmethod
    def _rounds_in_order(cls, rounds: list[EscalationRound]) -> list[EscalationRound]:
        delays = [r.after for r in rounds]
        if delays != sorted(delays):
            raise ValueError("escalation rounds must be listed in order of their delay")
        return rounds


class MessagingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A message whose provider request was in flight when its worker died may have been
    # sent: "resend" sends it again (at least once; maybe twice), "hold" marks it `unknown`
    # and sends nothing more (at most once; maybe never). See docs/reliability.md.
    in_doubt: Literal["resend", "hold"] = "resend"


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
    messaging: MessagingPolicy = Field(default_factory=MessagingPolicy)
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
