"""Call-outs: an assigned caregiver drops a shift (or a coordinator unassigns them); the shift
opens again and, per policy, is fanned out again to everyone but the one who dropped it.

The release is one conditional UPDATE on the shift's row, conditioned on who holds it: a
claim racing it waits on the same row, so exactly one caregiver holds a filled shift at any
moment, and a dropped shift is either open or claimed by someone new, never filled by nobody.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.observability import log_event
from caretime.shifts import texts
from caretime.shifts.alerts import alert, caregiver_label
from caretime.shifts.events import shift_changed
from caretime.shifts.fanout import start_fanout
from caretime.shifts.models import Shift, ShiftEvent
from caretime.shifts.notices import notify
from caretime.shifts.repository import FanOutRepository, ShiftEventRepository
from caretime.shifts.service import ShiftNotOpen, arm_expiry, reload_shift, require_shift
from caretime.tenancy.policy import ShiftPolicy

log = logging.getLogger("caretime.shifts")
DroppedBy = Literal["caregiver", "coordinator", "no_reply"]


@dataclass(frozen=True)
class Release:
    caregiver_id: str
    reason: str
    by: DroppedBy


async def unassign(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    reason: str,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> Shift:
    """A coordinator takes the assignee off a filled shift; the caregiver is told by SMS."""
    shift = await require_shift(session, tenant_id, shift_id)
    holder = shift.assigned_caregiver_id
    if shift.status != "filled" or holder is None or shift.start_time <= now:
        state = "started" if shift.status == "filled" else shift.status
        raise ShiftNotOpen(
            f"shift {shift_id!r} is {state}: only a filled shift that has not "
            "started can be unassigned",
            shift_status=shift.status,
        )
    release = Release(holder, reason, "coordinator")
    if not await release_shift(session, shift, release, policy=policy, now=now):
        shift = await reload_shift(session, tenant_id, shift_id)
        raise ShiftNotOpen(
            f"shift {shift_id!r} changed meanwhile; it is {shift.status}", shift_status=shift.status
        )
    await _tell_caregiver(session, shift, holder)
    return await reload_shift(session, tenant_id, shift_id)


async def release_shift(
    session: AsyncSession, shift: Shift, release: Release, *, policy: ShiftPolicy, now: datetime
) -> bool:
    """filled by this caregiver → open; True if this call made the change. Keeps the history
    (who held it since when, who released it and why), re-arms the expiry and re-fills."""
    held_since = shift.filled_at
    if not await _reopen(session, shift, release.caregiver_id, now):
        return False
    ShiftEventRepository(session, shift.tenant_id).record(
        shift.id,
        "dropped",
        at=now,
        caregiver_id=release.caregiver_id,
        reason=release.reason,
        by=release.by,
        held_since=held_since.isoformat() if held_since else None,
    )
    reopened = await reload_shift(session, shift.tenant_id, shift.id)
    await shift_changed(
        session, reopened, "dropped", now=now, caregiver_id=release.caregiver_id, by=release.by
    )
    await arm_expiry(session, shift)  # the claim had cancelled it
    await _alert_dropped(session, shift, release, policy, now)
    await FanOutRepository(session, shift.tenant_id).stop(shift.id)
    log_event(log, "shift_dropped", shift_id=shift.id, by=release.by)
    if policy.refill == "auto":
        await refill(session, shift, policy=policy, now=now)
    return True


async def _alert_dropped(
    session: AsyncSession, shift: Shift, release: Release, policy: ShiftPolicy, now: datetime
) -> None:
    who = await caregiver_label(session, shift.tenant_id, release.caregiver_id)
    text = texts.dropped_alert(shift, who, release.reason, policy.refill == "auto")
    drops = await times_dropped(session, shift)
    await alert(session, shift, "dropped", text, key=f"dropped:{drops}", now=now)


async def refill(
    session: AsyncSession, shift: Shift, *, policy: ShiftPolicy, now: datetime
) -> None:
    state = await start_fanout(session, shift.tenant_id, shift.id, policy=policy, now=now)
    await shift_changed(
        session, shift, "reopened", now=now, generation=state.generation, offers=state.offers
    )


async def _reopen(session: AsyncSession, shift: Shift, caregiver_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(Shift)
        .where(
            Shift.tenant_id == shift.tenant_id,
            Shift.id == shift.id,
            Shift.status == "filled",
            Shift.assigned_caregiver_id == caregiver_id,
            Shift.start_time > now,
        )
        .values(
            status="open",
            reconfirm_by=None,
            assigned_caregiver_id=None,
            filled_at=None,
            closed_at=None,
            updated_at=now,
        )
    )
    changed: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return changed


async def _tell_caregiver(session: AsyncSession, shift: Shift, caregiver_id: str) -> None:
    drops = await times_dropped(session, shift)
    body = texts.unassigned_text(shift)
    await notify(session, shift, [caregiver_id], body, key=f"drop:{drops}")


async def times_dropped(session: AsyncSession, shift: Shift) -> int:
    """How many times the shift was released (counted under the shift's row lock)."""
    count = await session.scalar(
        select(func.count()).where(
            ShiftEvent.tenant_id == shift.tenant_id,
            ShiftEvent.shift_id == shift.id,
            ShiftEvent.kind == "dropped",
        )
    )
    return count or 0
