"""Request and response bodies for /schedule, /outreach/batches and /calls."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from caretime.outreach import content
from caretime.outreach.content import CallContent, Variables
from caretime.outreach.recurrence import MAX_RULE, checked_rule
from caretime.policy.phones import PhoneText
from caretime.tenancy.policy import Duration, RetryDelay


class ScheduleItem(BaseModel):
    """One patient: a name and a phone, optionally an exact time and a time zone, and what
    the call is for and says. Any other field is an error."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    phone: PhoneText = Field(max_length=64)
    scheduled: datetime | None = Field(
        default=None, description="An instant; without an offset it is local time in `tz`."
    )
    tz: str | None = Field(
        default=None, max_length=64, description="IANA time zone, e.g. America/New_York."
    )
    purpose: str | None = Field(
        default=None,
        max_length=content.MAX_PURPOSE,
        description="What the call is for, e.g. annual-wellness: one live call per number "
        "and purpose.",
    )
    script: str | None = Field(
        default=None,
        max_length=content.MAX_SCRIPT,
        description="What the provider says; {{variable}} is replaced by the variable's value.",
    )
    variables: Variables | None = Field(
        default=None,
        description="Strings and numbers for the script and the agent, "
        'e.g. {"first_name": "John"}.',
    )
    allow_duplicate: bool = Field(
        default=False, description="Schedule even if the number has a live call for the purpose."
    )
    recurrence: str | None = Field(
        default=None,
        max_length=MAX_RULE,
        description="An RFC 5545 RRULE in the recipient's local time, e.g. "
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;COUNT=8: a series of calls, one at a time, the first "
        "at or after `scheduled` (else now).",
    )

    @field_validator("recurrence")
    @classmethod
    def _recurrence(cls, value: str | None) -> str | None:
        return None if value is None else checked_rule(value)

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, value: str | None) -> str | None:
        return content.checked_purpose(value) or None

    @field_validator("script")
    @classmethod
    def _script(cls, value: str | None) -> str | None:
        return content.checked_script(value)

    @field_validator("variables", mode="before")
    @classmethod
    def _variables(cls, value: object) -> Variables | None:
        return content.checked_variables(value)

    def content(self) -> CallContent:
        return CallContent(self.purpose or "", self.script, self.variables)


class ScheduledItemOut(BaseModel):
    name: str
    phone: str | int = Field(description="As given (a JSON integer is read as its digits).")
    phone_e164: str
    tz: str
    scheduled: datetime
    scheduled_task_id: str | None
    status: Literal["scheduled"]
    purpose: str | None = None
    series_id: str | None = Field(default=None, description="For an item with `recurrence`.")


class WaitingItemOut(BaseModel):
    """An item with `recurrence` whose first occurrence is beyond the planning horizon: the
    series exists and plans it when it comes inside."""

    name: str
    phone: str | int
    phone_e164: str
    tz: str
    status: Literal["waiting"]
    series_id: str
    next_occurrence: datetime
    scheduled_task_id: None = None


class RejectedItemOut(BaseModel):
    name: Any
    phone: Any
    status: Literal["rejected"]
    error: str


class BatchPlan(BaseModel):
    """A dry run's answer: what would be scheduled, item for item; nothing is created."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Jane Roe",
                    "phone": "(212) 555-0100",
                    "scheduled": "2026-03-03T10:30:00",
                    "tz": "America/New_York",
                }
            ]
        }
    )
    items: list[ScheduledItemOut | RejectedItemOut]
    next_cursor: None = None


class BatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["earliest", "spread"] | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    retry_delay: RetryDelay | None = None
    allow_duplicate: bool = Field(
        default=False,
        description="Schedule items even if their number already has a live call for the "
        "same purpose (an item's own allow_duplicate wins).",
    )


# The options that override the tenant's calling policy for one batch or call.
POLICY_OPTIONS = ("strategy", "max_attempts", "retry_delay")


class BatchIn(BatchOptions):
    items: list[Any] = Field(description="Items shaped like POST /schedule's.")


class BatchDoc(BatchOptions):
    """The JSON batch as documented; the handler reads `items` one by one (see BatchIn)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [{"name": "Jane Roe", "phone": "(212) 555-0100"}],
                    "strategy": "spread",
                    "retry_delay": "PT30M",
                }
            ]
        }
    )
    items: list[ScheduleItem]


class BatchOut(BaseModel):
    id: str
    source: str
    strategy: str
    max_attempts: int
    retry_delay: Duration
    total: int
    scheduled: int
    rejected: int
    rejections: dict[str, int] = Field(description="Rejected items by reason.")
    created_at: datetime
    rejected_items: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Each rejected item with its index (for a CSV, also its line) and reason.",
    )
    calls_by_status: dict[str, int] | None = None


class CallIn(ScheduleItem):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Jane Roe",
                    "phone": "(212) 555-0100",
                    "max_attempts": 2,
                    "retry_delay": "1h",
                },
                {
                    "name": "Jane Roe",
                    "phone": "(212) 555-0100",
                    "purpose": "weekly-check-in",
                    "recurrence": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;COUNT=8",
                },
            ]
        }
    )
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    retry_delay: RetryDelay | None = None


class CallPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"scheduled": "2026-03-03T15:30:00Z"}]}
    )
    scheduled: datetime
    tz: str | None = None


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    number: int
    status: str
    message_id: str | None
    started_at: datetime
    ended_at: datetime | None
    history: list[dict[str, Any]]
    disposition: str | None = None
    summary: str | None = None


AgentStatus = Literal["in_progress", "completed", "no_answer", "busy", "voicemail", "failed"]
Disposition = Literal[
    "reached", "consented", "declined", "wrong_number", "callback_requested", "opted_out",
    "voicemail_left", "other",
]  # fmt: skip


class OutcomeIn(BaseModel):
    """What a voice agent reports about the call's current attempt."""

    model_config = ConfigDict(extra="forbid")
    status: AgentStatus
    disposition: Disposition | None = None
    callback_at: AwareDatetime | None = Field(
        default=None, description="When the patient asked to be called back (with an offset)."
    )
    summary: str | None = Field(
        default=None, max_length=1000, description="A short summary: stored, never logged."
    )

    @model_validator(mode="after")
    def _callback_is_requested(self) -> OutcomeIn:
        if self.callback_at is not None and self.disposition not in (None, "callback_requested"):
            raise ValueError('callback_at goes with the disposition "callback_requested"')
        if self.callback_at is not None and self.status == "in_progress":
            raise ValueError("callback_at is reported when the attempt ends, not in progress")
        if self.disposition == "callback_requested" and self.callback_at is None:
            raise ValueError('the disposition "callback_requested" needs callback_at')
        return self


class CallOut(BaseModel):
    id: str
    status: str
    scheduled: datetime
    tz: str
    zones: list[str]
    name: str
    phone_e164: str
    batch_id: str | None
    pinned: bool
    attempts: int
    max_attempts: int
    retry_delay: Duration
    outcome: str | None
    purpose: str | None = None
    script: str | None = None
    variables: dict[str, Any] | None = None
    allow_duplicate: bool = False
    series_id: str | None = None
    created_at: datetime
    updated_at: datetime
    attempt_history: list[AttemptOut] | None = None


CallStatus = Literal[
    "scheduled", "dispatching", "ringing", "in_progress", "completed",
    "no_answer", "busy", "failed", "cancelled", "expired",
]  # fmt: skip


class CallPage(BaseModel):
    items: list[CallOut]
    next_cursor: str | None


def retry_delay_of(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


class OccurrenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    status: str
    scheduled: datetime = Field(validation_alias="scheduled_at")
    attempts: int
    outcome: str | None


class SeriesOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "ser_01",
                    "status": "active",
                    "rule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;COUNT=8;BYMINUTE=0",
                    "tz": "America/New_York",
                    "dtstart": "2026-03-02T10:00",
                    "next_occurrence": "2026-03-16T14:00:00Z",
                    "next_occurrence_local": "2026-03-16T10:00",
                    "current_call_id": "call_01",
                    "occurrences": 2,
                    "skipped": 0,
                }
            ]
        }
    )
    id: str
    status: Literal["active", "finished", "cancelled"]
    rule: str = Field(description="The RRULE as kept (BYHOUR without BYMINUTE gets BYMINUTE=0).")
    tz: str = Field(description="The zone the rule is read in (local wall times).")
    dtstart: str = Field(description="The rule's start, local wall time in `tz`.")
    next_occurrence: datetime | None = Field(
        description="The nominal moment of the next occurrence not planned yet (UTC); the "
        "planner puts it at the first allowed moment from then."
    )
    next_occurrence_local: str | None
    current_call_id: str | None = Field(description="The live occurrence, if any.")
    occurrences: int = Field(description="Calls created so far.")
    skipped: int = Field(description="Occurrences passed over (no room before the next one).")
    ended_reason: str | None = None
    name: str
    phone_e164: str
    purpose: str | None = None
    batch_id: str | None = None
    created_at: datetime
    updated_at: datetime
    calls: list[OccurrenceOut] | None = Field(
        default=None, description="The latest occurrences (at most 100), oldest first."
    )


SeriesStatus = Literal["active", "finished", "cancelled"]


class SeriesPage(BaseModel):
    items: list[SeriesOut]
    next_cursor: str | None
