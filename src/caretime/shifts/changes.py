"""Cancel or change a shift any time before it starts, telling the people it concerns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts import texts
from caretime.shifts.events import shift_changed
from caretime.shifts.models import Shift
from caretime.shifts.notices import live_offer_holders, notify
from caretime.shifts.repository import ShiftEventRepository
from caretime.shifts.service import ShiftNotOpen, cancel_pending_jobs, reload_shift, require_shift
from caretime.tenancy.policy import ShiftPolicy


async def cancel_shift(
    session: AsyncSession, tenant_id: str, shift_id: str, *, policy: ShiftPolicy, now: datetime
) -> Shift:
    """open or filled (not started) → cancelled; the assignee is told, and per policy
    everyone with a live offer. Cancelling a cancelled shift returns it."""
    shift = await require_shift(session, tenant_id, shift_id)
    if shift.status == "cancelled":
        return shift
    holder = shift.assigned_caregiver_id
    if not await _cancel(session, shift, now):
        shift = await reload_shift(session, tenant_id, shift_id)
        state = "started" if shift.status == "filled" else shift.status
        raise ShiftNotOpen(f"shift {shift_id!r} is {state}", shift_status=shift.status)
    ShiftEventRepository(session, tenant_id).record(
        shift_id, "cancelled", at=now, caregiver_id=holder
    )
    cancelled = await reload_shift(session, tenant_id, shift_id)
    await shift_changed(session, cancelled, "cancelled", now=now, caregiver_id=holder)
    await cancel_pending_jobs(session, tenant_id, shift_id)
    await _tell_about_cancellation(session, shift, holder, policy)
    return cancelled


async def _cancel(session: AsyncSession, shift: Shift, now: datetime) -> bool:
    """Conditional on the state read: a claim or a drop in between makes this a no-op (and
    the caller re-reads). A filled shift can be cancelled until it starts."""
    not_started = shift.status == "open" or shift.start_time > now
    if shift.status not in ("open", "filled") or not not_started:
        return False
    result = await session.execute(
        update(Shift)
        .where(
            Shift.tenant_id == shift.tenant_id,
            Shift.id == shift.id,
            Shift.status == shift.status,
            Shift.assigned_caregiver_id.is_(None)
            if shift.assigned_caregiver_id is None
            else Shift.assigned_caregiver_id == shift.assigned_caregiver_id,
        )
        .values(status="cancelled", closed_at=now, updated_at=now)
    )
    changed: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return changed


async def _tell_about_cancellation(
    session: AsyncSession, shift: Shift, holder: str | None, policy: ShiftPolicy
) -> None:
    if holder is not None:
        await notify(session, shift, [holder], texts.cancelled_text(shift), key="cancelled")
    if policy.cancel_notifies_offered:
        offered = await live_offer_holders(session, shift)
        body = texts.offer_withdrawn_text(shift)
        await notify(session, shift, offered, body, key="cancelled")
