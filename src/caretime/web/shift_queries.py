"""Shift reads the dashboard needs beyond the shift services: overview counts and caregiver
names for ids, tenant-scoped."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts.models import Caregiver, Shift


async def shift_counts(
    session: AsyncSession, tenant_id: str, *, start: datetime, end: datetime, now: datetime
) -> dict[str, int]:
    """Shifts filled in [start, end), whatever day they are worked; and the shifts still open
    at `now` that have not ended (the ones that need someone)."""
    filled = (Shift.filled_at >= start) & (Shift.filled_at < end)
    open_now = (Shift.status == "open") & (Shift.end_time > now)
    row = (
        await session.execute(
            select(func.count().filter(filled), func.count().filter(open_now)).where(
                Shift.tenant_id == tenant_id, filled | open_now
            )
        )
    ).one()
    return {"filled": row[0], "open": row[1]}


async def caregiver_names(
    session: AsyncSession, tenant_id: str, ids: Iterable[str | None]
) -> dict[str, str]:
    """Names by caregiver id, for the ids given (unknown ids are left out)."""
    wanted = {id_ for id_ in ids if id_}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Caregiver.id, Caregiver.name).where(
            Caregiver.tenant_id == tenant_id, Caregiver.id.in_(wanted)
        )
    )
    return {id_: name for id_, name in rows.all()}
