"""The feed's bodies: an event as callers see it, and a page of them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Subject(BaseModel):
    kind: str
    id: str


class EventOut(BaseModel):
    id: str
    type: str
    timestamp: str = Field(description="When the change happened (UTC).")
    subject: Subject
    actor: str = Field(
        description="key:{api key id}, dashboard:{api key id}, inbound:{message id} or system"
    )
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(
        description="Pass as `after` for the next page; also when `has_more` is false, to poll."
    )
    has_more: bool
