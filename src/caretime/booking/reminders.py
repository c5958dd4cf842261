"""Visit reminders: one job per reminder of tenant policy (`booking.reminders`), planned when a
visit is confirmed, re-planned when it moves, dropped when it ends. None goes out inside the
patient's quiet hours (in their phone's zones): one that would falls back to the last
allowed moment before it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import lifecycle, prompts
from caretime.booking.models import Appointment, Provider
from caretime.booking.repository import AppointmentRepository, booking_policy, provider_of
from caretime.booking.texts import describe
from caretime.clock import isoformat_z
from caretime.dispatch import JobContext, RetryLater, cancel_by_dedupe_key, enqueue, job_handler
from caretime.messaging import RelatedEntity, send_message
from caretime.observability import log_event
from caretime.policy.phones import parse_phone
from caretime.policy.quiet import QuietHours, last_awake_before, next_awake
from caretime.tenancy.policy import BookingPolicy, Reminder

REMIND = "booking.remind"
MAX_REMINDERS = 5  # policy allows at most this many, so dropping knows every key
log = logging.getLogger("caretime.booking")


def reminder_time(
    slot_start: datetime,
    before: timedelta,
    zones: Sequence[str],
    quiet: QuietHours,
    *,
    now: datetime,
) -> datetime | None:
    """When to send a reminder `before` the visit: that moment, or if it is quiet in any of
    `zones`, the last allowed moment before it; None if it has passed or no moment between
    now and then is allowed."""
    due = slot_start - before
    if due < now:
        return None
    return last_awake_before(due, zones, quiet, not_before=now)


def patient_zones(phone: str, provider: Provider) -> tuple[str, ...]:
    """The zones of the patient's number; the provider's when the number tells none."""
    return parse_phone(phone).zones or (provider.tz,)


def patient_awake_at(
    phone: str, provider: Provider, policy: BookingPolicy, now: datetime
) -> datetime:
    """The first moment at or after `now` outside the patient's quiet hours."""
    zones = patient_zones(phone, provider)
    return next_awake(now, zones, QuietHours.of(policy.quiet_hours))


def wait_until_awake(phone: str, provider: Provider, policy: BookingPolicy, now: datetime) -> None:
    """For a job about to text a patient: come back when their quiet hours end."""
    resume = patient_awake_at(phone, provider, policy, now)
    if resume > now:
        raise RetryLater(at=resume)


async def plan(session: AsyncSession, appointment: Appointment, *, now: datetime) -> None:
    """(Re)plan a visit's reminders from scratch: a confirmed visit with a phone gets one job
    per policy reminder; anything else gets none."""
    await drop(session, appointment)
    if appointment.status != "confirmed" or appointment.patient_phone is None:
        return
    policy = await booking_policy(session, appointment.tenant_id)
    provider = await provider_of(session, appointment)
    zones = patient_zones(appointment.patient_phone, provider)
    quiet = QuietHours.of(policy.quiet_hours)
    for index, reminder in enumerate(policy.reminders):
        at = reminder_time(appointment.slot_start, reminder.before, zones, quiet, now=now)
        if at is not None:
            await _enqueue(session, appointment, index, reminder, at)


async def drop(session: AsyncSession, appointment: Appointment) -> None:
    for index in range(MAX_REMINDERS):
        await cancel_by_dedupe_key(session, appointment.tenant_id, _key(appointment.id, index))


async def _enqueue(
    session: AsyncSession, appointment: Appointment, index: int, reminder: Reminder, at: datetime
) -> None:
    payload = {
        "appointment_id": appointment.id,
        "index": index,
        "slot_start": isoformat_z(appointment.slot_start),
        "channel": reminder.channel,
    }
    await enqueue(
        session,
        REMIND,
        payload,
        run_at=at,
        tenant_id=appointment.tenant_id,
        dedupe_key=_key(appointment.id, index),
    )


def _key(appointment_id: str, index: int) -> str:
    return f"{REMIND}:{appointment_id}:{index}"


@job_handler(REMIND)
async def send_reminder(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Re-read the visit: still confirmed, still at that time, and not quiet for the patient
    now (a late job waits for the morning, if that is still before the visit)."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    now = ctx.now()
    found = await AppointmentRepository(ctx.session, tenant_id).get(payload["appointment_id"])
    if found is None or not _still_due(found, payload, now):
        return
    policy = await booking_policy(ctx.session, tenant_id)
    provider = await provider_of(ctx.session, found)
    assert found.patient_phone is not None
    resume = patient_awake_at(found.patient_phone, provider, policy, now)
    if resume > now:
        if resume < found.slot_start:
            raise RetryLater(at=resume)
        return
    await _remind(ctx.session, found, provider, payload, now=now)
    log_event(log, "reminder_sent", appointment_id=found.id, tenant_id=tenant_id)


def _still_due(appointment: Appointment, payload: dict[str, Any], now: datetime) -> bool:
    return (
        lifecycle.effective_status(appointment, now) == "confirmed"
        and isoformat_z(appointment.slot_start) == payload["slot_start"]
        and appointment.slot_start > now
        and appointment.patient_phone is not None
    )


async def _remind(
    session: AsyncSession,
    appointment: Appointment,
    provider: Provider,
    payload: dict[str, Any],
    *,
    now: datetime,
) -> None:
    assert appointment.patient_phone is not None
    visit = describe(provider, appointment.slot_start)
    # The key names the visit's time: a moved visit is reminded again, a retried job is not.
    key = f"booking:{appointment.id}:remind:{payload['index']}:{payload['slot_start']}"
    if payload["channel"] == "voice":
        text = f"This is a reminder of your appointment with {visit}."
        await send_message(
            session,
            tenant_id=appointment.tenant_id,
            channel="voice",
            to=appointment.patient_phone,
            body=text,
            idempotency_key=key,
            related=RelatedEntity(prompts.RESERVATION_KIND, appointment.id),
        )
        return
    body = (
        f"Reminder: your appointment with {visit}. "
        "Reply YES to confirm you will come, NO to cancel, or R to reschedule."
    )
    question = prompts.Question(
        "reminder",
        appointment.patient_phone,
        body,
        key,
        expires_at=appointment.slot_start,
        appointment_id=appointment.id,
    )
    await prompts.ask(session, appointment.tenant_id, question, now=now)
