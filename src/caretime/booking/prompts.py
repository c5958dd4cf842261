"""Questions texted to patients: each outbound booking question is a prompt row written with
its message, so a reply is matched to what it answers. Asking twice for the same reason (a
retried job) finds the first prompt by its message key and sends nothing new."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.models import BookingPrompt
from caretime.ids import new_id
from caretime.messaging import RelatedEntity, send_message

RESERVATION_KIND = "booking.reservation"
WAITLIST_KIND = "booking.waitlist"


@dataclass(frozen=True)
class Question:
    kind: str  # confirm | reminder | options | cancel | rebook | followup | waitlist
    phone: str
    body: str
    key: str  # the message's idempotency key
    expires_at: datetime
    appointment_id: str | None = None
    waitlist_id: str | None = None
    options: Sequence[dict[str, Any]] = field(default_factory=tuple)


async def ask(
    session: AsyncSession, tenant_id: str, question: Question, *, now: datetime
) -> BookingPrompt:
    """Text the question and open its prompt, closing older open prompts about the same
    appointment (the newest question is the one a reply answers)."""
    existing = await _by_key(session, tenant_id, question.key)
    if existing is not None:
        return existing
    prompt = await open_(session, tenant_id, question, now=now)
    await send_message(
        session,
        tenant_id=tenant_id,
        channel="sms",
        to=question.phone,
        body=question.body,
        idempotency_key=question.key,
        related=_related(question),
    )
    return prompt


async def open_(
    session: AsyncSession, tenant_id: str, question: Question, *, now: datetime
) -> BookingPrompt:
    """Open the prompt without texting: for a question that is itself the reply to a text
    (messaging sends the reply)."""
    if question.appointment_id is not None:
        await close_for_appointment(session, tenant_id, question.appointment_id, now=now)
    prompt = BookingPrompt(
        id=new_id("bpq"),
        tenant_id=tenant_id,
        phone=question.phone,
        kind=question.kind,
        appointment_id=question.appointment_id,
        waitlist_id=question.waitlist_id,
        options=list(question.options),
        message_key=question.key,
        asked_at=now,
        expires_at=question.expires_at,
    )
    session.add(prompt)
    await session.flush()
    return prompt


def _related(question: Question) -> RelatedEntity | None:
    if question.appointment_id is not None:
        return RelatedEntity(RESERVATION_KIND, question.appointment_id)
    if question.waitlist_id is not None:
        return RelatedEntity(WAITLIST_KIND, question.waitlist_id)
    return None


async def get(session: AsyncSession, tenant_id: str, prompt_id: str) -> BookingPrompt | None:
    statement = select(BookingPrompt).where(
        BookingPrompt.tenant_id == tenant_id, BookingPrompt.id == prompt_id
    )
    return (await session.scalars(statement)).first()


async def close(session: AsyncSession, prompt: BookingPrompt, *, now: datetime) -> None:
    prompt.answered_at = now
    await session.flush()


async def close_for_appointment(
    session: AsyncSession, tenant_id: str, appointment_id: str, *, now: datetime
) -> None:
    await session.execute(
        update(BookingPrompt)
        .where(
            BookingPrompt.tenant_id == tenant_id,
            BookingPrompt.appointment_id == appointment_id,
            BookingPrompt.answered_at.is_(None),
        )
        .values(answered_at=now)
        .execution_options(synchronize_session=False)
    )


async def _by_key(session: AsyncSession, tenant_id: str, key: str) -> BookingPrompt | None:
    statement = select(BookingPrompt).where(
        BookingPrompt.tenant_id == tenant_id, BookingPrompt.message_key == key
    )
    return (await session.scalars(statement)).first()
