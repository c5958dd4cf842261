"""Request and response bodies for webhook endpoints and deliveries."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

TypePattern = str


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000)
    event_types: list[TypePattern] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=100,
        description="Event types to receive: exact (`shift.filled`), a family (`call.*`) or `*`.",
    )
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    rate_limit: int | None = Field(
        default=None, ge=1, le=10_000, description="Deliveries/s at most."
    )


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2000)
    event_types: list[TypePattern] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None
    rate_limit: int | None = Field(default=None, ge=1, le=10_000)


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    rate_limit: int | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret. Shown once: store it now.")


class EndpointPage(BaseModel):
    items: list[EndpointOut]


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class Replayed(BaseModel):
    replayed: int
