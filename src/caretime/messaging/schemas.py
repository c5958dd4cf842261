"""Request and response bodies of the messaging endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from caretime.policy.phones import PhoneText


class InboundIn(BaseModel):
    """A reply: `from` (or `from_phone`), `body`, and hint keys such as `shift_id`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    from_: PhoneText | None = Field(default=None, alias="from", max_length=40)
    from_phone: PhoneText | None = Field(default=None, max_length=40)
    body: str = Field(max_length=2000)
    message_id: str | None = Field(
        default=None,
        max_length=100,
        description="The provider's id for this reply: the same id again is recorded once.",
    )

    @model_validator(mode="after")
    def _has_sender(self) -> InboundIn:
        if not (self.from_ or self.from_phone):
            raise ValueError("give the sender as 'from' (or 'from_phone')")
        return self

    @property
    def sender(self) -> str:
        return self.from_ or self.from_phone or ""

    def hint(self) -> dict[str, str]:
        extra = self.model_extra or {}
        return {key: str(value) for key, value in extra.items() if value is not None}


class InboundOut(BaseModel):
    """What messaging did with a reply; routers add their own details (e.g. `shift_id`)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"from": "+12065550100", "body": "YES", "shift_id": "shift-1042"}]
        },
    )
    intent: str
    action: str
    message_id: str


class MessageEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    source: str
    provider_status: str | None
    status: str | None
    applied: bool
    received_at: datetime


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    id: str
    direction: str
    channel: str
    to: str = Field(validation_alias="to_phone")
    from_: str | None = Field(validation_alias="from_phone", serialization_alias="from")
    body: str
    status: str
    provider: str | None
    related_kind: str | None
    related_id: str | None
    intent: str | None
    suppression_reason: str | None
    error: str | None
    # True when a request for this message was in flight as its worker stopped: it was
    # sent again (status moves on) or held (status `unknown`); the phone may have it twice.
    in_doubt: bool
    created_at: datetime
    sent_at: datetime | None
    status_changed_at: datetime


class MessageDetailOut(MessageOut):
    events: list[MessageEventOut] = Field(default_factory=list)

    @classmethod
    def of(cls, message: Any, events: Sequence[Any]) -> MessageDetailOut:
        detail = cls.model_validate(message)
        detail.events = [MessageEventOut.model_validate(event) for event in events]
        return detail


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Always null: the latest `limit` messages.")


class KeypressIn(BaseModel):
    """A key pressed during a simulated call that asked for one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"digits": "1"}]})
    digits: str = Field(
        pattern=r"^[0-9*#]$",
        description="The key pressed: one of 0-9, * or #. The call's choices (for a voice "
        "shift offer, 1 takes the shift and 2 passes) are answered; any other key repeats "
        "the prompt.",
    )


class KeypressOut(BaseModel):
    """What the key did, and what the caller heard; routers add their own details."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "call_id": "msg_01a2b3c4d5e6f708192a3b4c5d6e7f80",
                    "intent": "accept",
                    "action": "assigned",
                    "said": "Confirmed: the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST is yours.",
                    "message_id": "msg_01a2b3c4d5e6f708192a3b4c5d6e7f81",
                    "router": "shifts",
                    "shift_id": "shift-1042",
                }
            ]
        },
    )
    call_id: str
    intent: str | None = Field(description="The choice the key made; null for no choice.")
    action: str = Field(description="What routing did, as for a text; `repeat`: no choice.")
    said: str = Field(description="What the caller heard (a choice's answer is also texted).")
    message_id: str | None = Field(description="The recorded keypress; null for no choice.")
