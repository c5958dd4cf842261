"""Appointment counts for the overview, tenant-scoped: live holds and confirmed visits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.models import Appointment


async def appointment_counts(
    session: AsyncSession, tenant_id: str, *, start: datetime, end: datetime, now: datetime
) -> dict[str, int]:
    """Appointments whose slot starts in [start, end): holds still live, and confirmed ones."""
    live_hold = (Appointment.status == "held") & (Appointment.hold_expires_at > now)
    row = (
        await session.execute(
            select(
                func.count().filter(live_hold),
                func.count().filter(Appointment.status == "confirmed"),
            ).where(
                Appointment.tenant_id == tenant_id,
                Appointment.slot_start >= start,
                Appointment.slot_start < end,
            )
        )
    ).one()
    return {"held": row[0], "confirmed": row[1]}
