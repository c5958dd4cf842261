"""A YES that came after the hold lapsed: the patient is told it lapsed and, if the time is
still free, offered it again (YES books it); if not, R lists other times."""

from __future__ import annotations

from datetime import timedelta

from caretime.booking import lifecycle, prompts, sms_moves
from caretime.booking.chat import Chat
from caretime.booking.replies import Reply
from caretime.booking.texts import describe
from caretime.clock import isoformat_z
from caretime.messaging import RouteResult

# How long "reply R for other times" is understood after a lapsed hold whose time is gone.
OTHER_TIMES_OPEN = timedelta(days=1)


async def lapsed(chat: Chat) -> RouteResult:
    hold = await chat.appointment()
    assert hold is not None
    status = lifecycle.effective_status(hold, chat.now)
    if status != "expired":
        text = f"Sorry, this appointment hold is no longer open ({status})."
        await chat.done()
        return chat.result("too_late", text, status=status)
    provider = await chat.provider(hold.provider_id)
    visit = describe(provider, hold.slot_start)
    if await sms_moves.still_free(chat, hold):
        text = (
            f"Sorry, your hold for {visit} lapsed before you replied. "
            "The time is still free: reply YES to book it."
        )
        option = {"provider_id": hold.provider_id, "slot_start": isoformat_z(hold.slot_start)}
        kind, expires_at, options = "rebook", hold.slot_start, [option]
    else:
        text = (
            f"Sorry, your hold for {visit} lapsed before you replied, and the time has been "
            "taken. Reply R to see other times."
        )
        kind, expires_at, options = "followup", chat.now + OTHER_TIMES_OPEN, []
    assert hold.patient_phone is not None
    question = prompts.Question(
        kind,
        hold.patient_phone,
        text,
        f"booking:lapsed:{chat.prompt.id}",
        expires_at=expires_at,
        appointment_id=hold.id,
        options=options,
    )
    await prompts.open_(chat.session, chat.tenant_id, question, now=chat.now)
    return chat.result("lapsed", text, status="expired", slot_free=bool(options))


async def answer_rebook(chat: Chat) -> RouteResult:
    reply = chat.said.reply
    hold = await chat.appointment()
    assert hold is not None
    if reply is Reply.yes or (reply is Reply.choice and chat.said.choice == 1):
        return await sms_moves.book_again(chat, hold, chat.prompt.options[0])
    if reply is Reply.reschedule:
        return await sms_moves.offer_times(chat)
    if reply in (Reply.no, Reply.cancel):
        await chat.done()
        return chat.result("declined", "OK, nothing was booked.")
    return chat.result("clarify", "Reply YES to book that time, R for other times, or NO.")
