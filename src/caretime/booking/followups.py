"""After a no-show: if tenant policy `booking.no_show_followup` says so, text the patient
offering to rebook, at the first moment outside their quiet hours."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import prompts, reminders
from caretime.booking.models import Appointment
from caretime.booking.repository import AppointmentRepository, booking_policy, provider_of
from caretime.booking.texts import describe
from caretime.dispatch import JobContext, enqueue, job_handler

FOLLOW_UP = "booking.no_show_followup"
# How long the offer to rebook stays open for replies.
OFFER_OPEN = timedelta(days=7)


async def plan(session: AsyncSession, appointment: Appointment, *, now: datetime) -> None:
    if appointment.patient_phone is None:
        return
    policy = await booking_policy(session, appointment.tenant_id)
    if not policy.no_show_followup:
        return
    provider = await provider_of(session, appointment)
    at = reminders.patient_awake_at(appointment.patient_phone, provider, policy, now)
    await enqueue(
        session,
        FOLLOW_UP,
        {"appointment_id": appointment.id},
        run_at=at,
        tenant_id=appointment.tenant_id,
        dedupe_key=f"{FOLLOW_UP}:{appointment.id}",
    )


@job_handler(FOLLOW_UP)
async def follow_up(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Still a no-show (not corrected to a late arrival) and not quiet for the patient now."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    now = ctx.now()
    visit = await AppointmentRepository(ctx.session, tenant_id).get(payload["appointment_id"])
    if visit is None or visit.status != "no_show" or visit.patient_phone is None:
        return
    policy = await booking_policy(ctx.session, tenant_id)
    provider = await provider_of(ctx.session, visit)
    reminders.wait_until_awake(visit.patient_phone, provider, policy, now)
    body = (
        f"We missed you at your appointment with {describe(provider, visit.slot_start)}. "
        "Reply R to pick a new time."
    )
    question = prompts.Question(
        "followup",
        visit.patient_phone,
        body,
        f"booking:{visit.id}:no_show_followup",
        expires_at=now + OFFER_OPEN,
        appointment_id=visit.id,
    )
    await prompts.ask(ctx.session, tenant_id, question, now=now)
