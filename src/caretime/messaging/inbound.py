"""Receiving a reply: record it, honour opt-out / opt-in / help, otherwise classify it and
hand it to the domain whose open question it answers. Nothing is ever dropped: a reply
that matches no question is stored and answered politely."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.errors import InvalidInput
from caretime.events import acting_as
from caretime.events.actor import inbound_actor
from caretime.ids import new_id
from caretime.messaging.consent import COMPLIANCE_KIND, set_opt_out
from caretime.messaging.intent import Intent, IntentClassifier, classify_intent
from caretime.messaging.models import Message
from caretime.messaging.outbound import OutgoingMessage, RelatedEntity, queue_messages
from caretime.messaging.phones import to_e164
from caretime.messaging.routing import NOT_FOUND, FoundQuestions, OpenQuestion, routers
from caretime.messaging.statuses import CHANNELS, RECEIVED

OPTED_OUT_REPLY = (
    "You are unsubscribed and will receive no more messages or calls. Reply START to resubscribe."
)
OPTED_IN_REPLY = "You are subscribed again. Reply STOP to unsubscribe, HELP for help."
HELP_REPLY = (
    "Reply to our messages with YES or NO. Reply STOP to unsubscribe, START to resubscribe."
)
UNMATCHED_REPLY = (
    "Thanks for your message. We could not match it to an open request; "
    "a coordinator will follow up if needed."
)
REPLY_KIND = "messaging.reply"
# A runtime service of this name replaces the keyword classifier (e.g. a model-based one).
CLASSIFIER_SERVICE = "messaging.classifier"


def classifier_of(runtime: Any) -> IntentClassifier | None:
    classifier: IntentClassifier | None = runtime.services.get(CLASSIFIER_SERVICE)
    return classifier


@dataclass(frozen=True)
class Inbound:
    from_phone: str
    body: str
    hint: dict[str, str] = field(default_factory=dict)
    to_phone: str | None = None
    provider: str | None = None
    provider_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class InboundOutcome:
    message: Message
    intent: Intent
    action: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_response(self) -> dict[str, Any]:
        return {
            **self.details,
            "intent": str(self.intent),
            "action": self.action,
            "message_id": self.message.id,
        }


async def receive(
    session: AsyncSession,
    tenant_id: str,
    inbound: Inbound,
    *,
    now: datetime,
    classifier: IntentClassifier | None = None,
) -> InboundOutcome:
    """Record the reply and act on it now (POST /messages/inbound answers with what it did)."""
    message, new = await record(session, unrecorded(tenant_id, inbound, now=now))
    if not new:
        intent = Intent(message.intent or "unknown")
        return InboundOutcome(message, intent, message.route_action or "")
    return await process(session, tenant_id, message, inbound.hint, now=now, classifier=classifier)


async def record(session: AsyncSession, received: Message) -> tuple[Message, bool]:
    """Store the reply (as `unrecorded` built it) once per provider message id or
    Idempotency-Key: the message stored, and whether this call stored it (False: the same
    reply arrived before, and the message is that one)."""
    if await _record_once(session, received):
        return received, True
    seen = await _already_received(session, received.tenant_id, received.idempotency_key)
    assert seen is not None
    return seen, False


def unrecorded(tenant_id: str, inbound: Inbound, *, now: datetime) -> Message:
    """The reply as a message not yet added to any session (InvalidInput if its sender is
    not a phone number). A reply without a key can be routed first and stored after, with
    its route, in one INSERT (see desk)."""
    phone = to_e164(inbound.from_phone)
    if phone is None:
        raise InvalidInput("'from' is not a phone number")
    return _record(tenant_id, inbound, phone, dedupe_key(inbound), now)


async def process(
    session: AsyncSession,
    tenant_id: str,
    message: Message,
    hint: dict[str, str],
    *,
    now: datetime,
    classifier: IntentClassifier | None = None,
    answers: Answers | None = None,
) -> InboundOutcome:
    """Classify a recorded reply and route it: opt-out, help, or the question it answers.
    Any caller that has a recorded inbound message (an API request, a provider webhook's
    job, a keypad answer) feeds it here. The SMS answer is queued at once, or added to
    `answers` (replies processed together queue theirs in one go: see desk)."""
    answers = answers or Answers(at_once=True)
    intent = classify_intent(message.body, classifier)
    with acting_as(inbound_actor(message.id)):
        outcome = await _route(session, tenant_id, message, intent, hint, now, answers)
    message.intent, message.route_action = str(intent), outcome.action
    await answers.send_now_if_due(session)
    if not answers.together:  # a batch's session flushes before it reads (see desk)
        await session.flush()
    return outcome


class Answers:
    """The SMS answers to replies, queued with `queue_messages`: at once (one reply), or
    together when `send` is called (replies processed in one transaction: one consent read,
    one INSERT, one send job per 200 answers instead of a read, two INSERTs and a job each).
    """

    def __init__(self, *, at_once: bool = False, questions: FoundQuestions | None = None) -> None:
        self._at_once = at_once
        self._waiting: dict[str, list[OutgoingMessage]] = {}
        # The open questions a batch found for its replies' numbers before the first reply.
        self.questions = questions

    @property
    def together(self) -> bool:
        return not self._at_once

    def add(self, tenant_id: str, answer: OutgoingMessage) -> None:
        self._waiting.setdefault(tenant_id, []).append(answer)

    async def send_now_if_due(self, session: AsyncSession) -> None:
        if self._at_once:
            await self.send(session)

    async def send(self, session: AsyncSession) -> None:
        """Queue the answers added so far (consent is read now, as each reply's own queuing
        would have: a STOP sends the answers before it first, see _route)."""
        waiting, self._waiting = self._waiting, {}
        for tenant_id, outgoing in waiting.items():
            await queue_messages(session, tenant_id=tenant_id, outgoing=outgoing)


def is_processed(message: Message) -> bool:
    """A recorded reply has been acted on (its route is stored with it)."""
    return message.route_action is not None


def dedupe_key(inbound: Inbound) -> str | None:
    """A reply is recorded (and answered) once per provider message id, else once per
    caller's Idempotency-Key: providers and relays retry what they think failed."""
    if inbound.provider_id:
        return f"{inbound.provider or 'api'}:{inbound.provider_id}"
    return f"key:{inbound.idempotency_key}" if inbound.idempotency_key else None


async def _record_once(session: AsyncSession, message: Message) -> bool:
    """Store the reply; False if its key was recorded before. The unique (tenant, key) index
    decides between twins arriving together: the second waits for the first, then fails."""
    if message.idempotency_key is None:
        session.add(message)
        return True
    if await _already_received(session, message.tenant_id, message.idempotency_key):
        return False
    try:
        async with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return False
    return True


async def _already_received(
    session: AsyncSession, tenant_id: str, key: str | None
) -> Message | None:
    if key is None:
        return None
    found = await session.scalars(
        select(Message).where(Message.tenant_id == tenant_id, Message.idempotency_key == key)
    )
    return found.first()


def _record(
    tenant_id: str, inbound: Inbound, phone: str, key: str | None, now: datetime
) -> Message:
    return Message(
        id=new_id("msg"),
        tenant_id=tenant_id,
        direction="inbound",
        channel="sms",
        to_phone=(inbound.to_phone or "")[:32],
        from_phone=phone,
        body=inbound.body,
        status=RECEIVED,
        provider=inbound.provider,
        provider_id=inbound.provider_id,
        idempotency_key=key,
        created_at=now,
        updated_at=now,
        status_changed_at=now,
    )


async def _route(
    session: AsyncSession,
    tenant_id: str,
    message: Message,
    intent: Intent,
    hint: dict[str, str],
    now: datetime,
    answers: Answers,
) -> InboundOutcome:
    phone = message.from_phone or ""
    if intent in (Intent.opt_out, Intent.opt_in):
        # Answers to earlier replies are queued under the consent they were answered under.
        await answers.send(session)
        _questions_after(answers, tenant_id, phone, hint, None, kept=False)
        opting_out = intent is Intent.opt_out
        changed = await set_opt_out(
            session,
            tenant_id,
            phone,
            CHANNELS,
            opted_out=opting_out,
            keyword=message.body.strip(),
            message_id=message.id,
            now=now,
        )
        if opting_out and changed:
            _reply(answers, tenant_id, message, OPTED_OUT_REPLY, compliance=True)
        elif not opting_out:
            _reply(answers, tenant_id, message, OPTED_IN_REPLY)
        return InboundOutcome(message, intent, "opted_out" if opting_out else "opted_in")
    if intent is Intent.help:
        _reply(answers, tenant_id, message, HELP_REPLY, compliance=True)
        return InboundOutcome(message, intent, "help")
    return await _answer(session, tenant_id, message, intent, hint, answers)


async def _answer(
    session: AsyncSession,
    tenant_id: str,
    message: Message,
    intent: Intent,
    hint: dict[str, str],
    answers: Answers,
) -> InboundOutcome:
    phone = message.from_phone or ""
    found = answers.questions.take(tenant_id, phone, hint) if answers.questions else NOT_FOUND
    if found is None or isinstance(found, OpenQuestion):
        question = found
    else:
        if not answers.together:
            await session.flush()
        question = await routers.find_question(session, tenant_id, phone, hint)
    if question is None:
        _reply(answers, tenant_id, message, UNMATCHED_REPLY)
        _questions_after(answers, tenant_id, phone, hint, None, kept=True)  # nothing changed
        return InboundOutcome(message, intent, "unmatched")
    result = await routers.get(question.router).answer(
        session, tenant_id, question, intent, message
    )
    _questions_after(answers, tenant_id, phone, hint, question, kept=result.keeps_question)
    # Set after the answer, so it is written with the intent and route in one UPDATE.
    message.related_kind, message.related_id = question.router, question.ref
    if result.reply:
        _reply(answers, tenant_id, message, result.reply)
    details = {"router": question.router, **result.details}
    return InboundOutcome(message, intent, result.action, details)


def _questions_after(
    answers: Answers,
    tenant_id: str,
    phone: str,
    hint: dict[str, str],
    question: OpenQuestion | None,
    *,
    kept: bool,
) -> None:
    """In a batch, after a reply: if it changed nothing a lookup reads (`kept`), the number's
    next reply with the same hint answers `question` too without reading it again; if it
    changed something, every later reply reads its question again (FoundQuestions)."""
    if answers.questions is None:
        return
    if kept:
        answers.questions.keep(tenant_id, phone, hint, question)
    else:
        answers.questions.forget()


def _reply(
    answers: Answers,
    tenant_id: str,
    message: Message,
    text: str,
    *,
    compliance: bool = False,
) -> None:
    """Answer the sender by SMS, once per inbound message (the key is the message's id)."""
    outgoing = OutgoingMessage(
        "sms",
        message.from_phone or "",
        text,
        f"reply:{message.id}",
        RelatedEntity(COMPLIANCE_KIND if compliance else REPLY_KIND, message.id),
    )
    answers.add(tenant_id, outgoing)
