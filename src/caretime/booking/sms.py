"""Confirmation by SMS: a hold made with `confirm_by_sms` texts the patient, and their YES or
NO reply confirms or cancels it through the same conditional moves as the endpoints."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import lifecycle
from caretime.booking.errors import InvalidTransition
from caretime.booking.models import Appointment, Provider
from caretime.booking.repository import AppointmentRepository
from caretime.booking.service import require_provider
from caretime.dispatch.wakeup import session_clock
from caretime.messaging import (
    Intent,
    Message,
    OpenQuestion,
    RelatedEntity,
    RouteResult,
    register_inbound_router,
    send_message,
)

RESERVATION_KIND = "booking.reservation"
CLARIFY_REPLY = (
    "Sorry, we did not understand. Reply YES to confirm your appointment or NO to cancel."
)
TOO_LATE_REPLY = (
    "Sorry, this appointment hold is no longer open ({status}), so nothing was changed. "
    "Please book again if you still need an appointment."
)


def describe(provider: Provider, slot_start: datetime) -> str:
    """'Dr. Jekyll on Tue Mar 3, 2026 at 11:00 EST' (the provider's local time)."""
    local = slot_start.astimezone(ZoneInfo(provider.tz))
    return f"{provider.name} on {local:%a %b} {local.day}, {local:%Y at %H:%M %Z}"


async def ask_to_confirm(
    session: AsyncSession, tenant_id: str, hold: Appointment, provider: Provider
) -> Message:
    """Queue the question in the caller's transaction (once per hold: the key is its id)."""
    assert hold.patient_phone is not None
    return await send_message(
        session,
        tenant_id=tenant_id,
        channel="sms",
        to=hold.patient_phone,
        body=(
            f"Reply YES to confirm your appointment with {describe(provider, hold.slot_start)}, "
            "or NO to cancel."
        ),
        idempotency_key=f"booking:{hold.id}:confirm",
        related=RelatedEntity(kind=RESERVATION_KIND, id=hold.id),
    )


class BookingReplies:
    """Routes a patient's reply to their newest live hold that asked for SMS confirmation."""

    name = "booking"
    hint_keys = frozenset({"reservation_id"})

    async def open_question(
        self, session: AsyncSession, tenant_id: str, phone: str, hint: dict[str, str]
    ) -> OpenQuestion | None:
        now = session_clock(session).now()
        statement = select(Appointment.id, Appointment.created_at).where(
            Appointment.tenant_id == tenant_id,
            Appointment.patient_phone == phone,
            Appointment.status == "held",
            Appointment.hold_expires_at > now,
        )
        if "reservation_id" in hint:
            if "\x00" in hint["reservation_id"]:
                return None  # no id can contain NUL (and no database column can)
            statement = statement.where(Appointment.id == hint["reservation_id"])
        statement = statement.order_by(Appointment.created_at.desc(), Appointment.id.desc())
        row = (await session.execute(statement.limit(1))).first()
        return None if row is None else OpenQuestion(self.name, row.id, row.created_at)

    async def answer(
        self,
        session: AsyncSession,
        tenant_id: str,
        question: OpenQuestion,
        intent: Intent,
        message: Message,
    ) -> RouteResult:
        details = {"reservation_id": question.ref}
        if intent is Intent.accept:
            target, action = "confirmed", "confirmed"
        elif intent is Intent.decline:
            target, action = "cancelled", "declined"
        else:
            return RouteResult("clarify", CLARIFY_REPLY, details)
        now = session_clock(session).now()
        try:
            appointment = await lifecycle.move(session, tenant_id, question.ref, target, now=now)
        except InvalidTransition:
            # The hold expired or was cancelled between finding the question and moving it.
            current = await AppointmentRepository(session, tenant_id).get(question.ref)
            status = "gone" if current is None else lifecycle.effective_status(current, now)
            return RouteResult(
                "too_late", TOO_LATE_REPLY.format(status=status), {**details, "status": status}
            )
        if target == "cancelled":
            return RouteResult(action, "Cancelled.", details)
        provider = await require_provider(session, tenant_id, appointment.provider_id)
        reply = f"Confirmed: your appointment with {describe(provider, appointment.slot_start)}."
        return RouteResult(action, reply, details)


register_inbound_router(BookingReplies())
