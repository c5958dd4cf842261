"""Appointment counts for the overview, tenant-scoped: what happened in a day (holds made,
visits confirmed) and the holds still live now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.models import Appointment


async def appointment_counts(
    session: AsyncSession, tenant_id: str, *, start: datetime, end: datetime, now: datetime
) -> dict[str, int]:
    """Holds made and visits confirmed in [start, end), whatever day their slot is on; and
    the holds live at `now`."""
    made = (Appointment.created_at >= start) & (Appointment.created_at < end)
    confirmed = (Appointment.confirmed_at >= start) & (Appointment.confirmed_at < end)
    live_hold = (Appointment.status == "held") & (Appointment.hold_expires_at > now)
    row = (
        await session.execute(
            select(
                func.count().filter(made),
                func.count().filter(confirmed),
                func.count().filter(live_hold),
            ).where(
                Appointment.tenant_id == tenant_id,
                (Appointment.created_at >= start) | (Appointment.confirmed_at >= start) | live_hold,
            )
        )
    ).one()
    return {"held": row[0], "confirmed": row[1], "on_hold": row[2]}
