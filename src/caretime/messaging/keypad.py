"""Answers by keypad: a call that offers choices ("press 1 to take the shift, 2 to pass")
carries them in its context, and a key pressed during it is a reply like a text, routed to
the question that call asked (not to the latest question asked of the number: a caregiver
called about one shift may have been texted about another since).

A call takes one answer: the keypress is recorded once per call (idempotency key
`keypad:{call id}`), so the provider's retries, or a second press, change nothing and hear
what the first heard. What the caller hears is also texted to them, as a written copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.events import acting_as
from caretime.events.actor import inbound_actor
from caretime.ids import new_id
from caretime.messaging.inbound import REPLY_KIND
from caretime.messaging.intent import Intent
from caretime.messaging.models import Message
from caretime.messaging.outbound import RelatedEntity, send_message
from caretime.messaging.routing import routers
from caretime.messaging.statuses import RECEIVED

# The context key of a call's choices: {"1": "accept", "2": "decline"}.
KEYPAD = "keypad"
# The action for a key that is none of the choices: the caller hears the prompt again.
REPEAT = "repeat"
NOT_A_CHOICE = "Sorry, that is not one of the choices."
UNMATCHED_SAID = "Thank you. A coordinator will follow up if needed. Goodbye."
THANKS_SAID = "Thank you. Goodbye."
ANSWERED_BEFORE_SAID = "We have your answer already. Thank you. Goodbye."


def keypad_context(choices: Mapping[str, Intent]) -> dict[str, Any]:
    """The context a sender gives a call to ask for a key (see Message.context)."""
    return {KEYPAD: {key: str(intent) for key, intent in choices.items()}}


def choices_of(context: Mapping[str, Any] | None) -> dict[str, Intent]:
    keypad = (context or {}).get(KEYPAD) or {}
    return {str(key): Intent(value) for key, value in keypad.items()}


@dataclass(frozen=True)
class KeypadOutcome:
    action: str
    said: str
    intent: Intent | None = None
    message: Message | None = None  # the recorded keypress (none for a key that is no choice)
    details: dict[str, Any] = field(default_factory=dict)

    def as_response(self, call: Message) -> dict[str, Any]:
        return {
            **self.details,
            "call_id": call.id,
            "intent": None if self.intent is None else str(self.intent),
            "action": self.action,
            "said": self.said,
            "message_id": None if self.message is None else self.message.id,
        }


async def press(
    session: AsyncSession,
    tenant_id: str,
    call: Message,
    digits: str,
    *,
    provider: str,
    now: datetime,
) -> KeypadOutcome:
    """A key pressed during `call`: a choice is recorded and routed like a text reply; any
    other key repeats the prompt (the caller decides again; nothing is recorded)."""
    intent = choices_of(call.context).get(digits)
    if intent is None:
        return KeypadOutcome(REPEAT, f"{NOT_A_CHOICE} {call.body}")
    keypress = await _record_once(session, _keypress(tenant_id, call, digits, provider, now))
    if keypress is None:
        return await _answered_before(session, tenant_id, call)
    with acting_as(inbound_actor(keypress.id)):
        outcome = await _route(session, tenant_id, call, keypress, intent)
    keypress.intent, keypress.route_action = str(intent), outcome.action
    await session.flush()
    return outcome


def _key(call: Message) -> str:
    return f"keypad:{call.id}"


def _keypress(tenant_id: str, call: Message, digits: str, provider: str, now: datetime) -> Message:
    """The keypress as an inbound message: from the phone called, on the voice channel.
    No provider id: the call's id at the provider belongs to the call's own message."""
    return Message(
        id=new_id("msg"),
        tenant_id=tenant_id,
        direction="inbound",
        channel="voice",
        to_phone=call.from_phone or "",
        from_phone=call.to_phone,
        body=f"pressed {digits}",
        status=RECEIVED,
        provider=provider,
        idempotency_key=_key(call),
        created_at=now,
        updated_at=now,
        status_changed_at=now,
    )


async def _record_once(session: AsyncSession, keypress: Message) -> Message | None:
    """Store the keypress; None if the call was answered before. Twin presses arriving
    together meet at the unique (tenant, key) index: the second waits, then fails."""
    if await _recorded(session, keypress.tenant_id, keypress.idempotency_key or ""):
        return None
    try:
        async with session.begin_nested():
            session.add(keypress)
    except IntegrityError:
        return None
    return keypress


async def _recorded(session: AsyncSession, tenant_id: str, key: str) -> Message | None:
    found = await session.scalars(
        select(Message).where(Message.tenant_id == tenant_id, Message.idempotency_key == key)
    )
    return found.first()


async def _route(
    session: AsyncSession, tenant_id: str, call: Message, keypress: Message, intent: Intent
) -> KeypadOutcome:
    await session.flush()
    question = await routers.question_asked_by(session, tenant_id, call)
    if question is None:
        return KeypadOutcome("unmatched", UNMATCHED_SAID, intent, keypress)
    keypress.related_kind, keypress.related_id = question.router, question.ref
    router = routers.get(question.router)
    result = await router.answer(session, tenant_id, question, intent, keypress)
    details = {"router": question.router, **result.details}
    if not result.reply:
        return KeypadOutcome(result.action, THANKS_SAID, intent, keypress, details)
    await _text_copy(session, tenant_id, keypress, result.reply)
    return KeypadOutcome(result.action, result.reply, intent, keypress, details)


async def _text_copy(session: AsyncSession, tenant_id: str, keypress: Message, text: str) -> None:
    """What the caller heard, in writing (the key is the keypress's, like a text's reply)."""
    await send_message(
        session,
        tenant_id=tenant_id,
        channel="sms",
        to=keypress.from_phone or "",
        body=text,
        idempotency_key=f"reply:{keypress.id}",
        related=RelatedEntity(REPLY_KIND, keypress.id),
    )


async def _answered_before(session: AsyncSession, tenant_id: str, call: Message) -> KeypadOutcome:
    """The call's first answer, as it was given: its action, and what was said (the copy)."""
    first = await _recorded(session, tenant_id, _key(call))
    assert first is not None
    copy = await _recorded(session, tenant_id, f"reply:{first.id}")
    said = ANSWERED_BEFORE_SAID if copy is None else copy.body
    intent = Intent(first.intent) if first.intent else None
    details = {"answered_before": True}
    return KeypadOutcome(first.route_action or "", said, intent, first, details)
