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


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = Field(description="Always null: a tenant's keys fit one page.")
