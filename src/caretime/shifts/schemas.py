"""Request and response bodies for caregivers, shifts, fan-outs and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from caretime.policy.phones import PhoneText, dialable_e164
from caretime.tenancy.policy import IanaZone

# Path and query parameters: NUL is the one character no database column may hold.
NO_NUL = r"^[^\x00]*$"


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    return value


Storable = AfterValidator(_storable)
OpaqueId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]
Role = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=32),
    Storable,
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]
Location = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300), Storable]
Notes = Annotated[str, StringConstraints(max_length=2000), Storable]
Phone = Annotated[
    PhoneText, StringConstraints(max_length=40), Storable, AfterValidator(dialable_e164)
]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("instant out of range") from exc


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]


def _distinct(roles: list[str]) -> list[str]:
    return list(dict.fromkeys(roles))


Roles = Annotated[list[Role], Field(min_length=1, max_length=20), AfterValidator(_distinct)]


class CaregiverCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "cg-77", "name": "Ann Lee", "phone": "(206) 555-0100", "roles": ["RN"]}
            ]
        }
    )
    id: OpaqueId | None = None
    name: Name
    phone: Phone
    roles: Roles
    active: bool = True


class CaregiverPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})
    name: Name | None = None
    phone: Phone | None = None
    roles: Roles | None = None
    active: bool | None = None


class CaregiverOut(BaseModel):
    id: str
    name: str
    phone: str
    roles: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class CaregiverPage(BaseModel):
    items: list[CaregiverOut]
    next_cursor: str | None


class ShiftCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "shift-1042",
                    "role_required": "RN",
                    "start_time": "2026-03-03T14:00:00Z",
                    "end_time": "2026-03-03T22:00:00Z",
                }
            ]
        }
    )
    id: OpaqueId | None = None
    role_required: Role
    start_time: Instant
    end_time: Instant
    tz: IanaZone | None = Field(
        default=None, description="Zone for describing the shift (default: the tenant's)."
    )
    location: Location | None = None
    notes: Notes | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> ShiftCreate:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class RoundOut(BaseModel):
    round: int
    channel: str
    due_at: datetime
    state: str = Field(description="scheduled | sent | skipped")
    offers: int
    by_message_status: dict[str, int]


class FanOutOut(BaseModel):
    shift_id: str
    shift_status: str
    started_at: datetime
    current_round: int
    next_round_at: datetime | None
    offers: int
    caregivers_contacted: int
    declined: int
    rounds: list[RoundOut]


class ShiftOut(BaseModel):
    id: str
    status: str
    role_required: str
    start_time: datetime
    end_time: datetime
    tz: str
    location: str | None
    notes: str | None
    assigned_caregiver_id: str | None
    filled_at: datetime | None
    created_at: datetime
    fanout: FanOutOut | None = None


class ShiftPage(BaseModel):
    items: list[ShiftOut]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    at: datetime
    kind: str = Field(description="offer | message_status | reply | assigned | cancelled | ...")
    caregiver_id: str | None = None
    offer_id: str | None = None
    round: int | None = None
    channel: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Timeline(BaseModel):
    shift_id: str
    status: str
    entries: list[TimelineEntry]
