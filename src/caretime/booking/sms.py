"""Booking by SMS: the inbound router for patients' replies, and the answer to the question a
hold made with `confirm_by_sms` asks. Each reply answers the newest open prompt to that
phone; the step registered for the prompt's kind decides what it does (see chat)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select
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
        prompt = await prompts.open_prompt(session, tenant_id, phone, now, about)
        if prompt is not None:
            return OpenQuestion(self.name, prompt.id, prompt.asked_at)
        # No question out, but an upcoming confirmed visit: "cancel my appointment" or R
        # about it is understood as a reply to a reminder, asked when it was confirmed.
        visit = await upcoming_visit(session, tenant_id, phone, now, about)
        if visit is None:
            return None
        return OpenQuestion(self.name, f"{VISIT_REF}{visit.id}", visit.confirmed_at or now)

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


async def upcoming_visit(
    session: AsyncSession, tenant_id: str, phone: str, now: datetime, about: str | None
) -> Appointment | None:
    """The patient's next confirmed visit (the one named by the hint, if any)."""
    statement = select(Appointment).where(
        Appointment.tenant_id == tenant_id,
        Appointment.patient_phone == phone,
        Appointment.status == "confirmed",
        Appointment.slot_start > now,
    )
    if about is not None:
        statement = statement.where(Appointment.id == about)
    order = (Appointment.slot_start, Appointment.id)
    return (await session.scalars(statement.order_by(*order).limit(1))).first()


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
