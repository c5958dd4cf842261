"""Telling a patient what the clinic changed: a visit cancelled, a request denied, a visit
cancelled because its time was taken out of availability, or moved. Sent once per change
(the job's dedupe key and the message's idempotency key name it), outside the patient's
quiet hours, and never for a change the patient made themselves by SMS (their reply already
answered them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import prompts, reminders
from caretime.booking.models import Appointment, Provider
from caretime.booking.repository import AppointmentRepository, booking_policy, provider_of
from caretime.booking.texts import describe, when
from caretime.clock import isoformat_z
from caretime.dispatch import JobContext, enqueue, job_handler
from caretime.events import current_actor

NOTIFY = "booking.notify"
# How long a cancelled patient's "R" to rebook is understood.
OFFER_OPEN = timedelta(days=7)
REBOOK = "Reply R to pick a new time."
TEXTS = {
    "cancelled": "Your appointment with {visit} has been cancelled. " + REBOOK,
    "denied": "Sorry, your appointment request with {visit} could not be accepted. " + REBOOK,
    "removed": (
        "Your appointment with {visit} has been cancelled: {provider} is no longer "
        "available then. " + REBOOK
    ),
    "rescheduled": (
        "Your appointment with {provider} has moved from {before} to {now}. "
        "Reply R to pick another time or NO to cancel."
    ),
}


async def plan(
    session: AsyncSession,
    appointment: Appointment,
    change: str,
    *,
    now: datetime,
    before: datetime | None = None,
) -> None:
    """Enqueue the notice of `change` for the first moment the patient may be texted."""
    if appointment.patient_phone is None or appointment.slot_start <= now:
        return
    if current_actor().startswith("inbound:"):
        return
    policy = await booking_policy(session, appointment.tenant_id)
    provider = await provider_of(session, appointment)
    at = reminders.patient_awake_at(appointment.patient_phone, provider, policy, now)
    slot_start = isoformat_z(appointment.slot_start)
    payload = {
        "appointment_id": appointment.id,
        "change": change,
        "slot_start": slot_start,
        "before": None if before is None else isoformat_z(before),
    }
    await enqueue(
        session,
        NOTIFY,
        payload,
        run_at=at,
        tenant_id=appointment.tenant_id,
        dedupe_key=_name(appointment.id, change, slot_start),
    )


def _name(appointment_id: str, change: str, slot_start: str) -> str:
    return f"booking:{appointment_id}:notice:{change}:{slot_start}"


@job_handler(NOTIFY)
async def notify(ctx: JobContext, payload: dict[str, Any]) -> None:
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    now = ctx.now()
    visit = await AppointmentRepository(ctx.session, tenant_id).get(payload["appointment_id"])
    if visit is None or visit.patient_phone is None:
        return
    policy = await booking_policy(ctx.session, tenant_id)
    provider = await provider_of(ctx.session, visit)
    reminders.wait_until_awake(visit.patient_phone, provider, policy, now)
    question = _question(visit, provider, payload, now)
    await prompts.ask(ctx.session, tenant_id, question, now=now)


def _question(
    visit: Appointment, provider: Provider, payload: dict[str, Any], now: datetime
) -> prompts.Question:
    assert visit.patient_phone is not None
    change = payload["change"]
    slot_start = _instant(payload["slot_start"])
    before = _instant(payload["before"]) if payload["before"] else slot_start
    text = TEXTS[change].format(
        visit=describe(provider, slot_start),
        provider=provider.name,
        now=when(provider, slot_start),
        before=when(provider, before),
    )
    # A moved visit is still booked: replies are about it, as to a reminder. Otherwise R
    # offers times for a new visit.
    moved = change == "rescheduled"
    return prompts.Question(
        "reminder" if moved else "followup",
        visit.patient_phone,
        text,
        _name(visit.id, change, payload["slot_start"]),
        expires_at=slot_start if moved else now + OFFER_OPEN,
        appointment_id=visit.id,
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
