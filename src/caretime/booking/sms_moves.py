"""Moving a visit by SMS: R (or "reschedule") gets the next free times as a numbered list;
replying with a number moves the visit there through the same reschedule as the API. After a
no-show the same list books a new visit instead (the missed one stays as it was)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from caretime.booking import lifecycle, prompts, reschedule, reservations, slots, transitions
from caretime.booking.chat import Chat
from caretime.booking.errors import InvalidTransition, VisitTypeNotFound
from caretime.booking.grid import Slot
from caretime.booking.models import Appointment
from caretime.booking.replies import Reply
from caretime.booking.sms_cancel import ask_to_cancel
from caretime.booking.texts import describe, when
from caretime.clock import ensure_utc, isoformat_z
from caretime.errors import CaretimeError
from caretime.messaging import RouteResult
from caretime.tenancy.policy import BookingPolicy

CHOICES = 3


MOVABLE = ("held", "confirmed")
# After these, the same list books a new visit like it (the old one stays as it was).
REBOOKABLE = ("no_show", "cancelled", "denied", "expired")
# How long a list of times offered for a new visit stays open for a number.
REBOOK_OPEN = timedelta(days=1)


async def offer_times(chat: Chat, *, apology: str = "") -> RouteResult:
    """Reply with the next free times for the visit and open a prompt expecting 1, 2 or 3."""
    appointment = await chat.appointment()
    status = None if appointment is None else lifecycle.effective_status(appointment, chat.now)
    if appointment is None or status not in (*MOVABLE, *REBOOKABLE):
        return await _gone(chat, appointment)
    provider = await chat.provider(appointment.provider_id)
    free = await next_free_times(chat, appointment)
    if not free:
        await chat.done()
        text = f"{apology}Sorry, {provider.name} has no other free time soon. Please call us."
        return chat.result("no_times", text)
    listed = "\n".join(f"{n}) {when(provider, s.start)}" for n, s in enumerate(free, 1))
    if status in MOVABLE:
        intro, outro = f"move your appointment with {provider.name}", "or NO to keep it."
        expires_at = appointment.slot_start
    else:
        intro, outro = f"book an appointment with {provider.name}", "or NO if none suits you."
        expires_at = chat.now + REBOOK_OPEN
    body = f"{apology}Reply {_numbers(len(free))} to {intro}:\n{listed}\n{outro}"
    options = [{"provider_id": s.provider_id, "slot_start": isoformat_z(s.start)} for s in free]
    question = prompts.Question(
        "options",
        chat.prompt.phone,
        body,
        f"booking:options:{chat.prompt.id}",
        expires_at=expires_at,
        appointment_id=appointment.id,
        options=options,
    )
    await prompts.open_(chat.session, chat.tenant_id, question, now=chat.now)
    return chat.result("times_offered", body, options=options)


async def next_free_times(chat: Chat, appointment: Appointment) -> list[Slot]:
    """The provider's next free starts for this visit (its own start excluded)."""
    policy = await chat.policy()
    query = slots.SlotQuery(
        [appointment.provider_id],
        chat.now,
        chat.now + slots.MAX_RANGE,
        appointment.visit_type_id,
    )
    try:
        found = await _find(chat, policy, query)
    except VisitTypeNotFound:  # the type was removed since: look for plain slots
        found = await _find(chat, policy, replace(query, visit_type=None))
    return [s for s in found if s.start != appointment.slot_start][:CHOICES]


async def still_free(chat: Chat, appointment: Appointment) -> bool:
    """Whether the visit's own time could be booked again now."""
    start = appointment.slot_start
    query = slots.SlotQuery(
        [appointment.provider_id], start, start + timedelta(seconds=1), appointment.visit_type_id
    )
    try:
        found = await _find(chat, await chat.policy(), query)
    except VisitTypeNotFound:
        return False
    return any(slot.start == start for slot in found)


async def _find(chat: Chat, policy: BookingPolicy, query: slots.SlotQuery) -> list[Slot]:
    found, _ = await slots.find_slots(
        chat.session, chat.tenant_id, policy, query, now=chat.now, limit=CHOICES + 1, after=None
    )
    return found


async def answer_options(chat: Chat) -> RouteResult:
    options = chat.prompt.options
    said = chat.said
    if said.reply is Reply.choice and 1 <= said.choice <= len(options):
        return await _move_to(chat, options[said.choice - 1])
    if said.reply is Reply.reschedule:
        return await offer_times(chat)
    if said.reply is Reply.no:
        return await _keep(chat)
    if said.reply is Reply.cancel:
        return await ask_to_cancel(chat)
    return chat.result(
        "clarify", f"Reply {_numbers(len(options))} to pick a time, or NO to keep your appointment."
    )


async def _move_to(chat: Chat, option: dict[str, str]) -> RouteResult:
    appointment = await chat.appointment()
    if appointment is not None and lifecycle.effective_status(appointment, chat.now) in REBOOKABLE:
        return await book_again(chat, appointment, option)
    assert chat.prompt.appointment_id is not None
    move = reschedule.Move(_instant(option["slot_start"]), option["provider_id"])
    try:
        moved = await reschedule.reschedule(
            chat.session,
            chat.tenant_id,
            await chat.policy(),
            chat.prompt.appointment_id,
            move,
            now=chat.now,
        )
    except InvalidTransition:
        return await _gone(chat, await chat.appointment())
    except CaretimeError:  # taken, day full or too soon since it was offered
        return await offer_times(chat, apology="Sorry, that time is no longer free. ")
    await chat.done()
    provider = await chat.provider(moved.provider_id)
    text = f"Done: your appointment is now with {describe(provider, moved.slot_start)}."
    if moved.status == "held":  # still to be confirmed: the next YES does it
        text += " Reply YES to confirm it, or NO to cancel."
        question = prompts.Question(
            "confirm",
            chat.prompt.phone,
            text,
            f"booking:confirm:{chat.prompt.id}",
            expires_at=moved.slot_start,
            appointment_id=moved.id,
        )
        await prompts.open_(chat.session, chat.tenant_id, question, now=chat.now)
    return chat.result("rescheduled", text)


async def book_again(chat: Chat, missed: Appointment, option: dict[str, str]) -> RouteResult:
    """A new confirmed visit like the missed one (the patient picked the time themselves)."""
    request = reservations.ReservationRequest(
        option["provider_id"],
        _instant(option["slot_start"]),
        missed.client_id,
        idempotency_key=f"booking:rebook:{chat.prompt.id}",
        phone=missed.patient_phone,
        visit_type=missed.visit_type_id,
    )
    try:
        hold = await reservations.reserve(
            chat.session, chat.tenant_id, await chat.policy(), request, now=chat.now
        )
    except CaretimeError:
        return await offer_times(chat, apology="Sorry, that time is no longer free. ")
    visit = await transitions.move(chat.session, chat.tenant_id, hold.id, "confirmed", now=chat.now)
    await chat.done()
    provider = await chat.provider(visit.provider_id)
    text = f"Booked: your appointment with {describe(provider, visit.slot_start)}."
    return chat.result("booked", text, new_reservation_id=visit.id)


async def _keep(chat: Chat) -> RouteResult:
    await chat.done()
    appointment = await chat.appointment()
    assert appointment is not None
    if appointment.status in REBOOKABLE:
        return chat.result("kept", "OK, nothing was booked.")
    provider = await chat.provider(appointment.provider_id)
    visit = describe(provider, appointment.slot_start)
    text = f"OK, nothing changed: your appointment with {visit} stays."
    return chat.result("kept", text)


async def _gone(chat: Chat, appointment: Appointment | None) -> RouteResult:
    status = "gone" if appointment is None else lifecycle.effective_status(appointment, chat.now)
    await chat.done()
    text = f"Sorry, this appointment is {status}, so it cannot be moved. Please book again."
    return chat.result("too_late", text, status=status)


def _numbers(count: int) -> str:
    return {1: "1", 2: "1 or 2"}.get(count, "1, 2 or 3")


def _instant(text: str) -> datetime:
    return ensure_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
