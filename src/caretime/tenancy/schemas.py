"""API shapes for tenants and keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from caretime.tenancy.policy import TenantPolicy


class TenantOut(BaseModel):
    id: str
    name: str
    policy: TenantPolicy


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NumbersIn(BaseModel):
    """The numbers this tenant sends from, the sending one first. Replies to them (Twilio's
    `To`) reach this tenant; a number belongs to one tenant."""

    model_config = ConfigDict(extra="forbid")
    numbers: list[str] = Field(max_length=20, examples=[["+12065550100"]])


class NumbersOut(BaseModel):
    numbers: list[str]
