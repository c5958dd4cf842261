"""Request and response bodies for caregivers, shifts, fan-outs and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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


def _convertible(value: datetime) -> datetime:
    _in_utc(value)
    return value


# An instant as sent, offset kept: a shift's start offset is checked against its zone.
OffsetInstant = Annotated[AwareDatetime, AfterValidator(_convertible)]


def _distinct(roles: list[str]) -> list[str]:
    return list(dict.fromkeys(roles))


Roles = Annotated[list[Role], Field(min_length=1, max_length=20), AfterValidator(_distinct)]


Tier = Annotated[int, Field(ge=1, le=9, description="1 = preferred")]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), Storable
]
Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_distinct)]
WeeklyHours = Annotated[float, Field(gt=0, le=168)]
ZONE_HELP = "IANA zone for quiet hours; absent: inferred from the phone (else the shift's)"


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
    tz: IanaZone | None = Field(default=None, description=ZONE_HELP)
    tier: Tier | None = None
    tags: Tags = Field(default_factory=list)
    max_weekly_hours: WeeklyHours | None = None


class CaregiverPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})
    name: Name | None = None
    phone: Phone | None = None
    roles: Roles | None = None
    active: bool | None = None
    tz: IanaZone | None = Field(default=None, description=f"{ZONE_HELP}; null clears it")
    tier: Tier | None = Field(default=None, description="1 = preferred; null clears it")
    tags: Tags | None = None
    max_weekly_hours: WeeklyHours | None = Field(default=None, description="null clears it")


class CaregiverOut(BaseModel):
    id: str
    name: str
    phone: str
    roles: list[str]
    active: bool
    tz: str | None = Field(description="the zone as given, or null")
    tier: int | None
    tags: list[str]
    max_weekly_hours: float | None
    opted_out: list[str] = Field(
        description="channels this caregiver's phone opted out of (texted STOP): no offers there"
    )
    zones: list[str] = Field(
        description="the zones quiet hours are read in: tz, else the phone's (all of them "
        "when its prefix spans several); empty: each shift's own zone"
    )
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
    start_time: OffsetInstant
    end_time: OffsetInstant
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


class ShiftPatch(BaseModel):
    """What may change before a shift starts; absent fields stay, `null` clears location/notes."""

    model_config = ConfigDict(extra="forbid")
    role_required: Role | None = None
    start_time: OffsetInstant | None = None
    end_time: OffsetInstant | None = None
    tz: IanaZone | None = None
    location: Location | None = None
    notes: Notes | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> ShiftPatch:
        for name in ("role_required", "start_time", "end_time", "tz"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self


Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Storable
]


class UnassignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason = Field(description="Why the caregiver is taken off (shown in the timeline).")


class RoundOut(BaseModel):
    round: int
    channel: str
    due_at: datetime
    state: str = Field(description="scheduled | sent | skipped | stopped")
    offers: int
    by_message_status: dict[str, int]


class FanOutOut(BaseModel):
    shift_id: str
    shift_status: str
    started_at: datetime
    generation: int = Field(description="1, then one more for each re-fill after a drop")
    current_round: int = Field(description="0 while stopped: dropped, waiting for a re-fill")
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
    reconfirm_by: datetime | None = Field(
        default=None, description="A filled shift changed: the assignee must reply YES by then"
    )
    created_at: datetime
    fanout: FanOutOut | None = None


class CandidateOffer(BaseModel):
    round: int
    channel: str
    generation: int
    held_until: datetime | None
    reply: str | None


class Candidate(BaseModel):
    caregiver_id: str
    name: str
    state: Literal["assigned", "offered", "eligible", "not_offered"] = Field(
        description="eligible: not offered yet, will be by the next round (or the fan-out)"
    )
    reasons: list[str] = Field(
        description="inactive, declined, dropped this shift, overlapping shift X, opted out "
        "of sms|voice, quiet hours until HH:MM local, ..."
    )
    offer: CandidateOffer | None = None


class CandidateList(BaseModel):
    shift_id: str
    status: str
    channels: list[str] = Field(description="the channels of the fan-out's ladder")
    reachable: int = Field(description="offered or eligible: how many the fan-out reaches")
    items: list[Candidate]


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
