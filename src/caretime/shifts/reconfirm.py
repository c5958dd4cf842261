"""A filled shift that changed waits for its assignee's YES: kept on YES, released on NO (a
call-out, see release.py) or when the deadline passes without an answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import cancel_by_dedupe_key
from caretime.shifts import texts
from caretime.shifts.models import Shift
from caretime.shifts.notices import notify
from caretime.shifts.release import Release, release_shift, times_dropped
from caretime.shifts.repository import ShiftEventRepository
from caretime.shifts.service import require_shift, shift_policy

RECONFIRM = "shifts.reconfirm"


def reconfirm_key(shift_id: str) -> str:
    return f"shift:{shift_id}:reconfirm"


async def keep(session: AsyncSession, shift: Shift, caregiver_id: str, *, now: datetime) -> bool:
    """The assignee says YES to the change; True if this call recorded it."""
    result = await session.execute(
        update(Shift)
        .where(
            Shift.tenant_id == shift.tenant_id,
            Shift.id == shift.id,
            Shift.status == "filled",
            Shift.assigned_caregiver_id == caregiver_id,
            Shift.reconfirm_by.is_not(None),
        )
        .values(reconfirm_by=None, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    events = ShiftEventRepository(session, shift.tenant_id)
    events.record(shift.id, "reconfirmed", at=now, caregiver_id=caregiver_id)
    await cancel_by_dedupe_key(session, shift.tenant_id, reconfirm_key(shift.id))
    return True


async def release_unconfirmed(
    session: AsyncSession, tenant_id: str, shift_id: str, *, now: datetime
) -> bool:
    """The deadline job: still unanswered → released, told, and re-filled per policy."""
    shift = await require_shift(session, tenant_id, shift_id)
    holder = shift.assigned_caregiver_id
    due = shift.reconfirm_by is not None and shift.reconfirm_by <= now
    if shift.status != "filled" or holder is None or not due:
        return False
    release = Release(holder, "did not confirm the change in time", "no_reply")
    policy = await shift_policy(session, tenant_id)
    if not await release_shift(session, shift, release, policy=policy, now=now):
        return False
    drops = await times_dropped(session, shift)
    await notify(session, shift, [holder], texts.not_reconfirmed_text(shift), key=f"drop:{drops}")
    return True
