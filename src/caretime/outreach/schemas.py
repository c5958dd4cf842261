"""Request and response bodies for /schedule, /outreach/batches and /calls."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from caretime.policy.phones import PhoneText
from caretime.tenancy.policy import Duration, RetryDelay


class ScheduleItem(BaseModel):
    """One patient: a name and a phone, optionally an exact time and a time zone."""

    name: str = Field(max_length=200)
    phone: PhoneText = Field(max_length=64)
    scheduled: datetime | None = Field(
        default=None, description="An instant; without an offset it is local time in `tz`."
    )
    tz: str | None = Field(
        default=None, max_length=64, description="IANA time zone, e.g. America/New_York."
    )


class ScheduledItemOut(BaseModel):
    name: str
    phone: str | int = Field(description="As given (a JSON integer is read as its digits).")
    phone_e164: str
    tz: str
    scheduled: datetime
    scheduled_task_id: str | None
    status: Literal["scheduled"]


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
                }
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
