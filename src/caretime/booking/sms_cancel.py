"""Cancelling a confirmed visit by SMS: "no" or "cancel my appointment" first asks "Reply YES
to cancel your visit on …"; only that YES cancels it."""

from __future__ import annotations

from caretime.booking import lifecycle, prompts, transitions
from caretime.booking.chat import Chat
from caretime.booking.errors import InvalidTransition
from caretime.booking.replies import Reply
from caretime.booking.texts import describe
from caretime.messaging import RouteResult


async def ask_to_cancel(chat: Chat) -> RouteResult:
    """A confirmed visit is cancelled only after a second, explicit YES."""
    appointment = await chat.appointment()
    if appointment is None or lifecycle.effective_status(appointment, chat.now) != "confirmed":
        status = (
            "gone" if appointment is None else lifecycle.effective_status(appointment, chat.now)
        )
        await chat.done()
        return chat.result("too_late", f"This appointment is already {status}.", status=status)
    provider = await chat.provider(appointment.provider_id)
    body = (
        f"Reply YES to cancel your visit with {describe(provider, appointment.slot_start)}, "
        "or NO to keep it."
    )
    question = prompts.Question(
        "cancel",
        chat.prompt.phone,
        body,
        f"booking:cancel:{chat.prompt.id}",
        expires_at=appointment.slot_start,
        appointment_id=appointment.id,
    )
    await prompts.open_(chat.session, chat.tenant_id, question, now=chat.now)
    return chat.result("cancel_asked", body)


async def answer_cancel(chat: Chat) -> RouteResult:
    reply = chat.said.reply
    if reply not in (Reply.yes, Reply.no, Reply.cancel):
        return chat.result("clarify", "Reply YES to cancel your visit, or NO to keep it.")
    await chat.done()
    if reply is Reply.no:
        return chat.result("kept", "OK, your visit stays booked.")
    assert chat.prompt.appointment_id is not None
    try:
        await transitions.move(
            chat.session, chat.tenant_id, chat.prompt.appointment_id, "cancelled", now=chat.now
        )
    except InvalidTransition:
        return chat.result("too_late", "This appointment was already cancelled.")
    return chat.result("cancelled", "Your visit is cancelled.")
