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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "key_01a2b3c4d5e6f708192a3b4c5d6e7f80",
                            "name": "bootstrap",
                            "prefix": "ct_AbCdEfG",
                            "created_at": "2026-03-02T15:00:00Z",
                            "last_used_at": "2026-03-02T15:01:10Z",
                            "revoked_at": None,
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )
    items: list[ApiKeyOut]
    next_cursor: str | None = Field(description="Always null: a tenant's keys fit one page.")


class NumbersIn(BaseModel):
    """The numbers this tenant sends from, the sending one first. Replies to them (Twilio's
    `To`) reach this tenant; a number belongs to one tenant."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"numbers": ["+12065550100"]}]}
    )
    numbers: list[str] = Field(max_length=20, examples=[["+12065550100"]])


class NumbersOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"numbers": ["+12065550100"]}]})
    numbers: list[str]
