"""Booking by SMS: the inbound router for patients' replies, and the answer to the question a
hold made with `confirm_by_sms` asks. Each reply answers the newest open prompt to that
phone; the step registered for the prompt's kind decides what it does (see chat)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import (
    lifecycle,
    prompts,
    sms_cancel,
    sms_moves,
    sms_rebook,
    sms_visits,
    transitions,
    waitlist_offers,
)
from caretime.booking.chat import Chat
from caretime.booking.errors import InvalidTransition
from caretime.booking.models import Appointment, BookingPrompt
from caretime.booking.replies import Reply, understand
from caretime.booking.repository import AppointmentRepository
from caretime.booking.texts import describe
from caretime.dispatch.wakeup import session_clock
from caretime.ids import new_id
from caretime.messaging import (
    Intent,
    Message,
    OpenQuestion,
    RouteResult,
    register_inbound_router,
)

CLARIFY_REPLY = (
    "Sorry, we did not understand. Reply YES to confirm your appointment, NO to cancel, "
    "or R to pick another time."
)
TOO_LATE_REPLY = (
    "Sorry, this appointment hold is no longer open ({status}), so nothing was changed. "
    "Please book again if you still need an appointment."
)


VISIT_REF = "visit:"


class BookingReplies:
    """Routes a patient's reply to the newest open booking prompt to their phone."""

    name = "booking"
    hint_keys = frozenset({"reservation_id"})

    async def open_question(
        self, session: AsyncSession, tenant_id: str, phone: str, hint: dict[str, str]
    ) -> OpenQuestion | None:
        about = hint.get("reservation_id")
        if about is not None and "\x00" in about:
            return None  # no id can contain NUL (and no database column can)
        now = session_clock(session).now()
        found = (await session.execute(_question_to(tenant_id, phone, now, about))).first()
        if found is None:
            return None
        if found.rank == _PROMPT:
            return OpenQuestion(self.name, found.ref, found.asked_at)
        # No question out, but an upcoming confirmed visit: "cancel my appointment" or R
        # about it is understood as a reply to a reminder, asked when it was confirmed.
        return OpenQuestion(self.name, f"{VISIT_REF}{found.ref}", found.asked_at or now)

    async def open_questions(
        self, session: AsyncSession, tenant_id: str, phones: Collection[str]
    ) -> dict[str, OpenQuestion]:
        """open_question for many numbers (replies without a hint): two reads for all."""
        now = session_clock(session).now()
        prompts_to = (
            select(BookingPrompt.phone, BookingPrompt.id, BookingPrompt.asked_at)
            .where(
                BookingPrompt.tenant_id == tenant_id,
                BookingPrompt.phone.in_(phones),
                BookingPrompt.answered_at.is_(None),
                BookingPrompt.expires_at > now,
            )
            .order_by(BookingPrompt.asked_at.desc(), BookingPrompt.id.desc())
        )
        found: dict[str, OpenQuestion] = {}
        for phone, ref, asked_at in await session.execute(prompts_to):
            found.setdefault(phone, OpenQuestion(self.name, ref, asked_at))
        visits_of = (
            select(Appointment.patient_phone, Appointment.id, Appointment.confirmed_at)
            .where(
                Appointment.tenant_id == tenant_id,
                Appointment.patient_phone.in_(phones),
                Appointment.status == "confirmed",
                Appointment.slot_start > now,
            )
            .order_by(Appointment.slot_start, Appointment.id)
        )
        for patient, ref, confirmed_at in await session.execute(visits_of):
            question = OpenQuestion(self.name, f"{VISIT_REF}{ref}", confirmed_at or now)
            found.setdefault(patient or "", question)
        return found

    async def answer(
        self,
        session: AsyncSession,
        tenant_id: str,
        question: OpenQuestion,
        intent: Intent,
        message: Message,
    ) -> RouteResult:
        now = session_clock(session).now()
        if question.ref.startswith(VISIT_REF):
            prompt = await _about_visit(session, tenant_id, question, message, now)
        else:
            found = await prompts.get(session, tenant_id, question.ref)
            assert found is not None
            prompt = found
        chat = Chat(session, tenant_id, prompt, understand(message.body or "", intent), now)
        return await STEPS[prompt.kind](chat)


_PROMPT, _VISIT = 0, 1


def _question_to(tenant_id: str, phone: str, now: datetime, about: str | None) -> Any:
    """The newest open prompt to the phone, else its next confirmed visit (the one named by
    the hint, if any), in one statement: every reply asks every router, so a reply to
    another domain's question pays for this read too. Columns: rank, ref, asked_at."""
    prompt = (
        select(
            literal(_PROMPT).label("rank"),
            BookingPrompt.id.label("ref"),
            BookingPrompt.asked_at.label("asked_at"),
        )
        .where(
            BookingPrompt.tenant_id == tenant_id,
            BookingPrompt.phone == phone,
            BookingPrompt.answered_at.is_(None),
            BookingPrompt.expires_at > now,
        )
        .order_by(BookingPrompt.asked_at.desc(), BookingPrompt.id.desc())
        .limit(1)
    )
    visit = (
        select(literal(_VISIT), Appointment.id, Appointment.confirmed_at)
        .where(
            Appointment.tenant_id == tenant_id,
            Appointment.patient_phone == phone,
            Appointment.status == "confirmed",
            Appointment.slot_start > now,
        )
        .order_by(Appointment.slot_start, Appointment.id)
        .limit(1)
    )
    if about is not None:
        prompt = prompt.where(BookingPrompt.appointment_id == about)
        visit = visit.where(Appointment.id == about)
    either = union_all(select(prompt.subquery()), select(visit.subquery())).subquery()
    return select(either).order_by(either.c.rank).limit(1)


async def _about_visit(
    session: AsyncSession, tenant_id: str, question: OpenQuestion, message: Message, now: datetime
) -> BookingPrompt:
    """A reminder-like prompt for a reply that came without a question (never texted)."""
    appointment_id = question.ref.removeprefix(VISIT_REF)
    visit = await AppointmentRepository(session, tenant_id).get(appointment_id)
    assert visit is not None
    assert visit.patient_phone is not None
    unprompted = prompts.Question(
        "reminder",
        visit.patient_phone,
        "",
        f"booking:unprompted:{message.id or new_id('msg')}",
        expires_at=visit.slot_start,
        appointment_id=visit.id,
    )
    return await prompts.open_(session, tenant_id, unprompted, now=now)


async def answer_confirmation(chat: Chat) -> RouteResult:
    """YES confirms the hold, NO (or "cancel my appointment") cancels it, R offers times."""
    reply = chat.said.reply
    current = await chat.appointment()
    if current is not None and current.status == "confirmed":  # confirmed meanwhile
        return await sms_visits.answer_reminder(chat)
    if reply is Reply.reschedule:
        return await sms_moves.offer_times(chat)
    if reply not in (Reply.yes, Reply.no, Reply.cancel):
        return chat.result("clarify", CLARIFY_REPLY)
    target = "confirmed" if reply is Reply.yes else "cancelled"
    assert chat.prompt.appointment_id is not None
    try:
        appointment = await transitions.move(
            chat.session, chat.tenant_id, chat.prompt.appointment_id, target, now=chat.now
        )
    except InvalidTransition:
        if reply is Reply.yes:
            return await sms_rebook.lapsed(chat)
        return await _too_late(chat)
    await chat.done()
    if target == "cancelled":
        return chat.result("declined", "Cancelled.")
    provider = await chat.provider(appointment.provider_id)
    return chat.result(
        "confirmed",
        f"Confirmed: your appointment with {describe(provider, appointment.slot_start)}.",
    )


async def _too_late(chat: Chat) -> RouteResult:
    """The hold expired or was cancelled between the question and this answer."""
    current = await chat.appointment()
    status = "gone" if current is None else lifecycle.effective_status(current, chat.now)
    await chat.done()
    return chat.result("too_late", TOO_LATE_REPLY.format(status=status), status=status)


Step = Callable[[Chat], Awaitable[RouteResult]]
# What answers a prompt of each kind.
STEPS: dict[str, Step] = {
    "confirm": answer_confirmation,
    "reminder": sms_visits.answer_reminder,
    "options": sms_moves.answer_options,
    "cancel": sms_cancel.answer_cancel,
    "followup": sms_visits.answer_followup,
    "rebook": sms_rebook.answer_rebook,
    "waitlist": waitlist_offers.answer_offer,
}

register_inbound_router(BookingReplies())
