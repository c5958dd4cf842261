"""Request bodies, query models and response bodies for providers, availability, slots and
reservations."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

# Query: the slot search's parameters are request shapes like the bodies here; FastAPI's
# marker only says they come from the query string (and documents them so).
from fastapi import Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

from caretime.policy.phones import PhoneText, dialable_e164
from caretime.storable import QueryText, Storable
from caretime.tenancy.policy import IanaZone, Weekday

_WALL_TIME = re.compile(r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")


def _wall_time(value: str) -> str:
    if not _WALL_TIME.match(value):
        raise ValueError("expected a local time as HH:MM, from 00:00 to 24:00, e.g. 08:00")
    return value


WallTime = Annotated[
    str,
    AfterValidator(_wall_time),
    WithJsonSchema({"type": "string", "pattern": _WALL_TIME.pattern, "examples": ["08:00"]}),
]
OpaqueId = Annotated[str, Field(min_length=1, max_length=128), Storable]


Phone = Annotated[PhoneText, Field(max_length=40), AfterValidator(dialable_e164)]


Limit = Annotated[int, Query(ge=1, le=1000)]  # a page's length, a query parameter
MaxPerDay = Annotated[int | None, Field(ge=1, le=1000, description="active visits per local day")]


class ProviderIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"id": "dr-jekyll", "name": "Dr. Jekyll", "tz": "America/New_York"}]
        },
    )
    id: OpaqueId | None = None
    name: Annotated[str, Field(min_length=1, max_length=200), Storable]
    tz: IanaZone = Field(examples=["America/New_York"])
    max_per_day: MaxPerDay = None


class ProviderPatch(BaseModel):
    """Limits only: a provider's zone cannot change (its windows are stored in local time)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"max_per_day": 8}]})
    max_per_day: MaxPerDay


class ProviderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    tz: str
    max_per_day: int | None
    created_at: datetime


BufferMinutes = Annotated[int, Field(ge=0, le=60, description="minutes")]


class VisitTypeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "new-patient", "name": "New patient", "minutes": 45, "buffer_after": 15}
            ]
        },
    )
    id: OpaqueId
    name: Annotated[str, Field(min_length=1, max_length=200), Storable]
    minutes: Literal[15, 30, 45, 60]
    buffer_before: BufferMinutes = 0
    buffer_after: BufferMinutes = 0


class VisitTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    provider_id: str
    name: str
    minutes: int
    buffer_before: int
    buffer_after: int


class ProviderPage(BaseModel):
    items: list[ProviderOut]
    next_cursor: str | None


class DatedWindowIn(BaseModel):
    """Time on one local date. `action: remove` takes time away (a day off without start/end)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"date": "2026-08-13", "start": "08:00", "end": "15:00"}]},
    )
    date: date
    start: WallTime | None = None
    end: WallTime | None = None
    action: Literal["add", "remove"] = "add"


class WeeklyTemplateIn(BaseModel):
    """The same local window on some weekdays, from a date, until a date (inclusive) or on."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"weekdays": ["mon", "wed"], "start": "09:00", "end": "12:00", "from": "2026-08-03"}
            ]
        },
    )
    weekdays: list[Weekday] = Field(min_length=1)
    start: WallTime
    end: WallTime
    valid_from: date = Field(alias="from")
    valid_until: date | None = Field(default=None, alias="until")


def _window_form(value: Any) -> str | None:
    """Which form an availability item takes: the one with `weekdays` is a weekly template."""
    if isinstance(value, dict):
        return "[weekly]" if "weekdays" in value else "[dated]"
    if isinstance(value, WeeklyTemplateIn | DatedWindowIn):
        return "[weekly]" if isinstance(value, WeeklyTemplateIn) else "[dated]"
    return None


# Tagged by shape (tags in brackets are left out of error locations), so a bad item reports
# the errors of the form it was meant to be, not of every form it is not.
WindowIn = Annotated[
    Annotated[WeeklyTemplateIn, Tag("[weekly]")] | Annotated[DatedWindowIn, Tag("[dated]")],
    Discriminator(
        _window_form,
        custom_error_type="availability_shape",
        custom_error_message="expected an object: {date, start, end} for one date, "
        "or {weekdays, start, end, from} for a weekly template",
    ),
]
AvailabilityBody = Annotated[
    Annotated[WindowIn, Tag("[one]")] | Annotated[list[WindowIn], Tag("[list]")],
    Discriminator(lambda value: "[list]" if isinstance(value, list) else "[one]"),
]


class TemplateOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    id: str
    weekdays: list[Weekday]
    start: str
    end: str
    valid_from: date = Field(alias="from")
    valid_until: date | None = Field(alias="until")


class WindowOut(BaseModel):
    date: date
    start: str
    end: str
    start_utc: datetime
    end_utc: datetime


class AvailabilityOut(BaseModel):
    provider_id: str
    tz: str
    windows: list[WindowOut]
    templates: list[TemplateOut]


class FhirStatus(BaseModel):
    appointment: str
    slot: str


class ReservationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "provider_id": "dr-jekyll",
                    "slot_start": "2026-08-13T12:00:00Z",
                    "client_id": "patient-1",
                }
            ]
        },
    )
    provider_id: OpaqueId
    slot_start: AwareDatetime
    client_id: Annotated[str, Field(min_length=1, max_length=200), Storable]
    visit_type: OpaqueId | None = None
    confirm_by_sms: bool = False
    # The patient's phone: reminders and notices go to it (and the confirmation question).
    phone: Phone | None = None

    @model_validator(mode="after")
    def _phone_for_sms(self) -> ReservationIn:
        if self.confirm_by_sms and self.phone is None:
            raise ValueError("confirm_by_sms needs a phone")
        return self


class ReservationOut(BaseModel):
    id: str
    status: str
    expires_at: datetime | None
    provider_id: str
    slot_start: datetime
    slot_end: datetime
    visit_type: str | None
    client_id: str
    created_at: datetime
    confirmed_at: datetime | None
    arrived_at: datetime | None = None
    fhir: FhirStatus


class HistoryEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    type: str
    occurred_at: datetime
    actor: str
    data: dict[str, Any]


class RescheduleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"slot_start": "2026-08-14T13:00:00Z"}]}
    )
    slot_start: AwareDatetime
    provider_id: OpaqueId | None = Field(default=None, description="default: the same provider")


PATCH_STATUSES = (
    "confirmed",
    "denied",
    "cancelled",
    "expired",
    "held",
    "arrived",
    "fulfilled",
    "no_show",
)
# The AWS appointment API's values and FHIR's spellings, read in any case.
STATUS_ALIASES = {
    "pending": "held",
    "booked": "confirmed",
    "canceled": "cancelled",
    "noshow": "no_show",
    "no-show": "no_show",
}


def patch_status(value: Any) -> str:
    text = str(value).strip().lower()
    status = STATUS_ALIASES.get(text, text)
    if status not in PATCH_STATUSES:
        raise ValueError(
            f"unknown status {value!r}: use one of {', '.join(PATCH_STATUSES)} "
            "(or PENDING, CONFIRMED, DENIED, EXPIRED in any case)"
        )
    return status


class ReservationPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "confirmed"}]}
    )
    status: Annotated[
        str,
        AfterValidator(patch_status),
        Field(examples=["confirmed", "CONFIRMED", "no_show"]),
    ]


class AvailabilityChangeOut(BaseModel):
    provider_id: str
    templates: list[TemplateOut]
    cancelled_appointments: list[ReservationOut]


class AppointmentPage(BaseModel):
    items: list[ReservationOut]
    next_cursor: str | None


DayOrInstant = AwareDatetime | date


class SlotSearch(BaseModel):
    """GET /slots' query parameters as one model: FastAPI documents them as six parameters
    all the same, but checks a model's fields in one validation where it spent ~25 µs of
    introspection on each separate parameter, even an absent one (docs/benchmarks.md, "slots")."""

    start: Annotated[
        DayOrInstant | None,
        Query(
            description="An instant, or a date: from the provider's local midnight. Default: now"
        ),
    ] = None
    end: Annotated[
        DayOrInstant | None,
        Query(
            description="An instant, or a date: to the end of that local day (included). "
            "Default: start + 7 days"
        ),
    ] = None
    provider_id: Annotated[list[Annotated[str, Storable]] | None, Query()] = None
    visit_type: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="Slots as long as this visit type (and its buffers free), only at "
            "providers that offer it",
            examples=["new-patient"],
        ),
        Storable,
    ] = None
    limit: Limit = 500
    cursor: QueryText = None


class SlotOut(BaseModel):
    provider_id: str
    start: datetime
    end: datetime


class SlotPage(BaseModel):
    items: list[SlotOut]
    slots: list[SlotOut] = Field(
        deprecated=True, description="The same as `items`, kept for clients of earlier releases."
    )
    next_cursor: str | None


class WaitlistIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_id": "patient-1",
                    "phone": "+16175550100",
                    "provider_id": "dr-jekyll",
                    "earliest": "2026-08-13T12:00:00Z",
                    "latest": "2026-08-20T21:00:00Z",
                }
            ]
        },
    )
    client_id: Annotated[str, Field(min_length=1, max_length=200), Storable]
    phone: Phone
    provider_id: OpaqueId | None = Field(default=None, description="default: any provider")
    earliest: AwareDatetime
    latest: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> WaitlistIn:
        if self.latest <= self.earliest:
            raise ValueError("latest must be after earliest")
        return self


class WaitlistOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    client_id: str
    provider_id: str | None
    earliest: datetime
    latest: datetime
    status: str
    appointment_id: str | None
    created_at: datetime
