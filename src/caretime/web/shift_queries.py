"""Shift counts for the overview, tenant-scoped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts.models import Shift


async def shift_counts(
    session: AsyncSession, tenant_id: str, *, start: datetime, end: datetime
) -> dict[str, int]:
    """Shifts starting in [start, end), by status."""
    rows = await session.execute(
        select(Shift.status, func.count())
        .where(Shift.tenant_id == tenant_id, Shift.start_time >= start, Shift.start_time < end)
        .group_by(Shift.status)
    )
    return {status: count for status, count in rows.all()}
