"""Replies about a visit: to a reminder, YES (coming), NO or "cancel my appointment" (asked
to confirm the cancellation), R (other times); to a no-show's follow-up, R (times to book)."""

from __future__ import annotations

from caretime.booking.chat import Chat
from caretime.booking.replies import Reply
from caretime.booking.sms_cancel import ask_to_cancel
from caretime.booking.sms_moves import offer_times
from caretime.messaging import RouteResult

REMINDER_CLARIFY = (
    "Sorry, we did not understand. Reply YES if you will come, NO to cancel, "
    "or R to pick another time."
)


async def answer_reminder(chat: Chat) -> RouteResult:
    reply = chat.said.reply
    if reply is Reply.reschedule:
        return await offer_times(chat)
    if reply in (Reply.no, Reply.cancel):
        return await ask_to_cancel(chat)
    if reply is Reply.yes:
        await chat.done()
        return chat.result("attending", "Thank you, see you then.")
    return chat.result("clarify", REMINDER_CLARIFY)


async def answer_followup(chat: Chat) -> RouteResult:
    reply = chat.said.reply
    if reply in (Reply.reschedule, Reply.yes, Reply.choice):
        return await offer_times(chat)
    if reply in (Reply.no, Reply.cancel):
        await chat.done()
        return chat.result("declined", "OK, nothing was booked.")
    return chat.result("clarify", "Reply R to pick a new time, or NO.")
