"""Booking by SMS: the inbound router for patients' replies, and the answer to the question a
hold made with `confirm_by_sms` asks. Each reply answers the newest open prompt to that
phone; the step registered for the prompt's kind decides what it does (see chat)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import lifecycle, prompts
from caretime.booking.chat import STEPS, Chat, step
from caretime.booking.errors import InvalidTransition
from caretime.booking.replies import Reply, understand
from caretime.booking.sms_moves import offer_times
from caretime.booking.texts import describe
from caretime.dispatch.wakeup import session_clock
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
        return None if prompt is None else OpenQuestion(self.name, prompt.id, prompt.asked_at)

    async def answer(
        self,
        session: AsyncSession,
        tenant_id: str,
        question: OpenQuestion,
        intent: Intent,
        message: Message,
    ) -> RouteResult:
        prompt = await prompts.get(session, tenant_id, question.ref)
        assert prompt is not None
        now = session_clock(session).now()
        chat = Chat(session, tenant_id, prompt, understand(message.body or "", intent), now)
        return await STEPS[prompt.kind](chat)


@step("confirm")
async def answer_confirmation(chat: Chat) -> RouteResult:
    """YES confirms the hold, NO (or "cancel my appointment") cancels it, R offers times."""
    reply = chat.said.reply
    if reply is Reply.reschedule:
        return await offer_times(chat)
    if reply not in (Reply.yes, Reply.no, Reply.cancel):
        return chat.result("clarify", CLARIFY_REPLY)
    target = "confirmed" if reply is Reply.yes else "cancelled"
    assert chat.prompt.appointment_id is not None
    try:
        appointment = await lifecycle.move(
            chat.session, chat.tenant_id, chat.prompt.appointment_id, target, now=chat.now
        )
    except InvalidTransition:
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


register_inbound_router(BookingReplies())
