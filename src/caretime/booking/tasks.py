"""Job handlers: a hold's expiry at its deadline."""

from __future__ import annotations

import logging
from typing import Any

from caretime.booking import lifecycle
from caretime.booking.models import Appointment
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
