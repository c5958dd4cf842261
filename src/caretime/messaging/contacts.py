"""/contacts/{phone}: a number's consent per channel with its history, and consent given by
other means (a letter, a call to the front desk) recorded with a note."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.deps import ClockDep, SessionDep
from caretime.errors import InvalidInput
from caretime.messaging.consent import ConsentSource, OptOutState, consent_history, set_opt_out
from caretime.messaging.models import OptOut
from caretime.messaging.phones import to_e164
from caretime.messaging.statuses import CHANNELS
from caretime.openapi import problems
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["contacts"])
PhonePath = Annotated[str, Path(max_length=40, description="The number, e.g. +12125550100.")]


class ChannelConsent(BaseModel):
    opted_out: bool
    changed_at: datetime | None = None
    how: str | None = Field(default=None, description="How the latest statement was given.")


class ConsentChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    channel: str
    opted_out: bool
    source: str = Field(description="reply (a keyword texted in), api, or agent.")
    keyword: str | None
    note: str | None
    message_id: str | None
    related_id: str | None = Field(description="The call an agent's report came from.")
    changed_at: datetime


class ContactConsentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phone": "+12125550100",
                    "consent": {
                        "voice": {"opted_out": True, "changed_at": "2026-03-02T14:00:00Z",
                                  "how": "api"},
                        "sms": {"opted_out": False},
                    },
                    "history": [
                        {"channel": "voice", "opted_out": True, "source": "api",
                         "keyword": None, "note": "asked at the front desk",
                         "message_id": None, "related_id": None,
                         "changed_at": "2026-03-02T14:00:00Z"}
                    ],
                }
            ]
        }
    )  # fmt: skip
    phone: str
    consent: dict[str, ChannelConsent]
    history: list[ConsentChangeOut] = Field(description="Newest first, at most 100.")


class ConsentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"channel": "voice", "opted_out": True, "note": "asked at the front desk"}]
        },
    )
    channel: Literal["voice", "sms", "all"]
    opted_out: bool
    note: str = Field(min_length=1, max_length=500, description="How and when the patient said so.")


@router.get("/contacts/{phone}", responses=problems(InvalidInput))
async def get_contact(
    phone: PhonePath, tenant: TenantDep, session: SessionDep
) -> ContactConsentOut:
    """A number's consent per channel (opted out or not, since when, how) and its history."""
    return await _consent_of(session, tenant.id, _e164(phone))


@router.put("/contacts/{phone}/consent", responses=problems(InvalidInput))
async def put_consent(
    phone: PhonePath, body: ConsentIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> ContactConsentOut:
    """Record an opt-out or opt-in given by other means, with a note, in the consent audit."""
    e164, now = _e164(phone), clock.now()
    channels = CHANNELS if body.channel == "all" else (body.channel,)
    source = ConsentSource("api", note=body.note)
    await set_opt_out(
        session, tenant.id, e164, channels, opted_out=body.opted_out, now=now, source=source
    )
    return await _consent_of(session, tenant.id, e164)


def _e164(phone: str) -> str:
    e164 = to_e164(phone)
    if e164 is None:
        raise InvalidInput(f"{phone[:40]!r} is not a valid phone number")
    return e164


async def _consent_of(session: AsyncSession, tenant_id: str, phone: str) -> ContactConsentOut:
    rows = await session.scalars(
        select(OptOut).where(OptOut.tenant_id == tenant_id, OptOut.phone == phone)
    )
    by_channel = {row.channel: row for row in rows}
    history = await consent_history(session, tenant_id, phone)
    return ContactConsentOut(
        phone=phone,
        consent={channel: _channel(by_channel.get(channel)) for channel in CHANNELS},
        history=[ConsentChangeOut.model_validate(change) for change in history],
    )


def _channel(row: OptOut | None) -> ChannelConsent:
    if row is None:
        return ChannelConsent(opted_out=False)
    how = OptOutState(row.changed_at, row.keyword, row.source).how()
    return ChannelConsent(opted_out=row.opted_out, changed_at=row.changed_at, how=how)
