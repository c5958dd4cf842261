"""PATCH /shifts/{id}: change an open or filled shift before it starts.

An open shift whose fan-out is running is offered again as a new generation when what
caregivers read changed (time, place, role), so nobody takes it on the old description. A
filled shift's assignee is told and asked to reply YES to keep it by a deadline; no answer
by then releases it and it is re-filled (job `shifts.reconfirm`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import cancel_by_dedupe_key, enqueue
from caretime.errors import InvalidInput
from caretime.shifts import texts
from caretime.shifts.events import shift_changed
from caretime.shifts.fanout import start_fanout
from caretime.shifts.models import Shift
from caretime.shifts.notices import notify
from caretime.shifts.reconfirm import RECONFIRM, reconfirm_key
from caretime.shifts.repository import FanOutRepository, ShiftEventRepository
from caretime.shifts.schemas import ShiftPatch
from caretime.shifts.service import (
    ShiftNotOpen,
    arm_expiry,
    cancel_round_jobs,
    check_offset,
    expire_key,
    reload_shift,
    require_shift,
)
from caretime.tenancy.policy import ShiftPolicy

# What a caregiver reads in an offer; notes never reach them, so changing notes asks nothing.
DESCRIBED = frozenset({"role_required", "start_time", "end_time", "tz", "location"})


async def update_shift(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    patch: ShiftPatch,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> Shift:
    shift = await require_shift(session, tenant_id, shift_id)
    _check_changeable(shift, patch, now)
    changed = _changes(shift, patch)
    if not changed:
        return shift
    deadline = _reconfirm_deadline(shift, changed, policy, now)
    if not await _apply(session, shift, {**changed, "reconfirm_by": deadline}, now):
        shift = await reload_shift(session, tenant_id, shift_id)
        raise ShiftNotOpen(f"shift {shift_id!r} changed meanwhile; it is {shift.status}")
    shift = await reload_shift(session, tenant_id, shift_id)
    await _record(session, shift, sorted(changed), now)
    await _follow_up(session, shift, set(changed), deadline, policy=policy, now=now)
    return shift


def _check_changeable(shift: Shift, patch: ShiftPatch, now: datetime) -> None:
    if shift.status not in ("open", "filled") or shift.start_time <= now:
        state = shift.status if shift.start_time > now else "started"
        raise ShiftNotOpen(
            f"shift {shift.id!r} is {state}: only an open or filled shift that has not "
            "started can be changed",
            shift_status=shift.status,
        )
    if shift.status == "filled" and _differs(shift, "role_required", patch.role_required):
        raise ShiftNotOpen(
            f"shift {shift.id!r} is filled: its role cannot change; unassign the caregiver first",
            shift_status=shift.status,
        )
    if patch.start_time is not None:
        whose = "the zone sent" if patch.tz else "the shift's zone"
        check_offset(patch.start_time, patch.tz or shift.tz, whose=whose)
    start = patch.start_time or shift.start_time
    end = patch.end_time or shift.end_time
    if end <= start:
        _invalid("end_time", "end_time must be after start_time")
    if start <= now:
        _invalid("start_time", "start_time must be in the future")


def _invalid(field: str, message: str) -> None:
    raise InvalidInput(message, errors=[{"loc": ["body", field], "msg": message}])


def _differs(shift: Shift, name: str, value: Any) -> bool:
    return value is not None and value != getattr(shift, name)


def _changes(shift: Shift, patch: ShiftPatch) -> dict[str, Any]:
    given = patch.model_dump(exclude_unset=True)
    for name in ("start_time", "end_time"):
        if name in given:
            given[name] = given[name].astimezone(UTC)
    return {name: value for name, value in given.items() if getattr(shift, name) != value}


def _reconfirm_deadline(
    shift: Shift, changed: dict[str, Any], policy: ShiftPolicy, now: datetime
) -> datetime | None:
    if shift.status != "filled" or not DESCRIBED & set(changed):
        return shift.reconfirm_by
    # Never later than half-way to the start, so a release leaves time to re-fill.
    start: datetime = changed.get("start_time", shift.start_time)
    return min(now + policy.reconfirm_within, now + (start - now) / 2)


async def _apply(
    session: AsyncSession, shift: Shift, values: dict[str, Any], now: datetime
) -> bool:
    """Conditional on the state read: a claim, drop or cancel in between makes it a no-op."""
    holder = shift.assigned_caregiver_id
    result = await session.execute(
        update(Shift)
        .where(
            Shift.tenant_id == shift.tenant_id,
            Shift.id == shift.id,
            Shift.status == shift.status,
            Shift.assigned_caregiver_id.is_(None)
            if holder is None
            else Shift.assigned_caregiver_id == holder,
        )
        .values(**values, updated_at=now)
    )
    changed: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return changed


async def _record(session: AsyncSession, shift: Shift, names: list[str], now: datetime) -> None:
    ShiftEventRepository(session, shift.tenant_id).record(
        shift.id, "updated", at=now, caregiver_id=shift.assigned_caregiver_id, changed=names
    )
    reconfirm_by = _iso(shift.reconfirm_by)
    await shift_changed(
        session, shift, "updated", now=now, changed=names, reconfirm_by=reconfirm_by
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def _follow_up(
    session: AsyncSession,
    shift: Shift,
    changed: set[str],
    deadline: datetime | None,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> None:
    if shift.status == "open":
        if "start_time" in changed:  # the expiry moves with the start
            await cancel_by_dedupe_key(session, shift.tenant_id, expire_key(shift.id))
            await arm_expiry(session, shift)
        if DESCRIBED & changed:
            await _offer_again(session, shift, policy=policy, now=now)
    elif DESCRIBED & changed and deadline is not None:
        await _ask_assignee(session, shift, deadline, now=now)


async def _offer_again(
    session: AsyncSession, shift: Shift, *, policy: ShiftPolicy, now: datetime
) -> None:
    """A running fan-out restarts as a new generation with the new description."""
    fanouts = FanOutRepository(session, shift.tenant_id)
    fanout = await fanouts.for_shift(shift.id)
    if fanout is None or fanout.current_round == 0:
        return
    await cancel_round_jobs(session, shift.tenant_id, shift.id)
    await fanouts.stop(shift.id)
    await start_fanout(session, shift.tenant_id, shift.id, policy=policy, now=now)


async def _ask_assignee(
    session: AsyncSession, shift: Shift, deadline: datetime, *, now: datetime
) -> None:
    assert shift.assigned_caregiver_id is not None, "a filled shift has an assignee"
    body = texts.changed_text(shift, deadline)
    key = f"changed:{shift.updated_at.isoformat()}"
    await notify(session, shift, [shift.assigned_caregiver_id], body, key=key)
    await cancel_by_dedupe_key(session, shift.tenant_id, reconfirm_key(shift.id))
    await enqueue(
        session,
        RECONFIRM,
        {"shift_id": shift.id},
        run_at=deadline,
        tenant_id=shift.tenant_id,
        dedupe_key=reconfirm_key(shift.id),
    )
