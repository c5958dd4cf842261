"""Job handlers: the sweep that expires the holds due in a minute (and the older one-job-per-hold
expiry, kept for jobs queued before the sweep)."""

from __future__ import annotations

import logging
from typing import Any

from caretime.booking import lifecycle, waitlist
from caretime.booking.holding import EXPIRE_HOLDS
from caretime.booking.models import Appointment
from caretime.booking.repository import AppointmentRepository
from caretime.booking.reservations import EXPIRE_HOLD
from caretime.dispatch import JobContext, job_handler
from caretime.observability import log_event
from caretime.retention import Prunable, register

log = logging.getLogger("caretime.booking")


# Ended appointments (cancelled, expired, denied) go when the tenant's policy says so.
register(Prunable("ended_appointments", Appointment, Appointment.id, Appointment.updated_at,
                  lambda p: p.ended_appointments,
                  Appointment.status.in_(("cancelled", "expired", "denied"))))  # fmt: skip


@job_handler(EXPIRE_HOLD)
async def expire_hold(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Expire the hold if it is still held and due; a confirm or cancel that won does nothing."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    appointment_id = payload["appointment_id"]
    if await lifecycle.expire(ctx.session, tenant_id, appointment_id, now=ctx.now()):
        log_event(log, "hold_expired", appointment_id=appointment_id, tenant_id=tenant_id)
        hold = await AppointmentRepository(ctx.session, tenant_id).get(appointment_id)
        assert hold is not None
        await waitlist.freed(ctx.session, hold, now=ctx.now())


@job_handler(EXPIRE_HOLDS)
async def expire_holds(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Expire every hold of the tenant that is due (its minute's and any earlier one still
    held), each told to the events log and offered to the waitlist as its own job did."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    for hold in await lifecycle.expire_due(ctx.session, tenant_id, now=ctx.now()):
        log_event(log, "hold_expired", appointment_id=hold.id, tenant_id=tenant_id)
        await waitlist.freed(ctx.session, hold, now=ctx.now())
