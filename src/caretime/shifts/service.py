"""Shifts: create, read, list, cancel, and expire at their start time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import cancel_by_dedupe_key, enqueue
from caretime.errors import Conflict, InvalidInput, NotFound
from caretime.ids import new_id
from caretime.shifts.events import shift_changed
from caretime.shifts.ladder import from_document
from caretime.shifts.models import Shift
from caretime.shifts.repository import (
    FanOutRepository,
    ShiftEventRepository,
    ShiftRepository,
    insert_unique,
)
from caretime.shifts.schemas import ShiftCreate, ShiftOut
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import ShiftPolicy
from caretime.tenancy.service import policy_of

EXPIRE = "shifts.expire"
ESCALATE = "shifts.escalate"
SEND_HELD = "shifts.send_held"
UNFILLED = "shifts.unfilled"
UNFILLED_REASONS = ("ladder", "near_start")


class ShiftNotFound(NotFound):
    problem = "shift-not-found"
    title = "No such shift"


class ShiftExists(Conflict):
    problem = "shift-exists"
    title = "A shift with this id already exists"


class ZoneMismatch(InvalidInput):
    problem = "shift-zone-mismatch"
    title = "The start time's offset does not match the shift's zone"


def check_offset(
    start: datetime,
    zone: str,
    *,
    whose: str = "the tenant's default zone",
    field: str = "start_time",
) -> None:
    """A start sent with a local offset (not UTC) must be local time in the zone the shift
    will be described in; otherwise caregivers would read it in the wrong zone."""
    offset, expected = start.utcoffset(), start.astimezone(ZoneInfo(zone)).utcoffset()
    if offset in (timedelta(0), expected):
        return
    message = (
        f"{field} is {_offset(offset)} but {whose} {zone} is {_offset(expected)} then; send tz"
    )
    raise ZoneMismatch(message, errors=[{"loc": ["body", field], "msg": message}])


def _offset(value: timedelta | None) -> str:
    minutes = int((value or timedelta(0)).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class ShiftNotOpen(Conflict):
    problem = "shift-not-open"
    title = "The shift is not open"


def expire_key(shift_id: str) -> str:
    return f"shift:{shift_id}:expire"


def unfilled_key(shift_id: str, generation: int, reason: str) -> str:
    return f"shift:{shift_id}:fanout:{generation}:unfilled:{reason}"


def round_key(shift_id: str, generation: int, number: int) -> str:
    """The first fan-out keeps the keys it always had; a re-fill's keys name its generation."""
    if generation == 1:
        return f"shift:{shift_id}:round:{number}"
    return f"shift:{shift_id}:fanout:{generation}:round:{number}"


async def create_shift(
    session: AsyncSession,
    tenant_id: str,
    body: ShiftCreate,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> Shift:
    shift_id = body.id or new_id("shf")
    if body.tz is None:
        check_offset(body.start_time, policy.default_tz)
    started = body.start_time <= now
    shift = Shift(
        id=shift_id,
        role_required=body.role_required,
        start_time=body.start_time.astimezone(UTC),
        end_time=body.end_time.astimezone(UTC),
        tz=body.tz or policy.default_tz,
        location=body.location,
        notes=body.notes,
        # A shift reported after it began can never be offered: it is born expired.
        status="expired" if started else "open",
        closed_at=now if started else None,
        created_at=now,
        updated_at=now,
    )
    duplicate = ShiftExists(f"shift {shift_id!r} already exists")
    await insert_unique(ShiftRepository(session, tenant_id), shift, duplicate)
    if not started:
        await arm_expiry(session, shift)
    return shift


async def shift_policy(session: AsyncSession, tenant_id: str) -> ShiftPolicy:
    """The tenant's shift policy, for work that starts from a reply or a job, not a request."""
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None, "a shift's tenant exists"
    return policy_of(tenant).shifts


async def require_shift(session: AsyncSession, tenant_id: str, shift_id: str) -> Shift:
    shift = await ShiftRepository(session, tenant_id).get(shift_id)
    if shift is None:
        raise ShiftNotFound(f"no shift {shift_id!r}")
    return shift


async def reload_shift(session: AsyncSession, tenant_id: str, shift_id: str) -> Shift:
    """Read the committed row again, not the copy this session already holds."""
    repo = ShiftRepository(session, tenant_id)
    statement = repo.select().where(Shift.id == shift_id).execution_options(populate_existing=True)
    shift = await repo.first(statement)
    if shift is None:
        raise ShiftNotFound(f"no shift {shift_id!r}")
    return shift


async def list_shifts(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Shift], str | None]:
    repo = ShiftRepository(session, tenant_id)
    statement = repo.select()
    if status is not None:
        statement = statement.where(Shift.status == status)
    return await repo.page(statement, limit=limit, after=cursor)


async def close_shift(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    status: str,
    *,
    now: datetime,
    only_if_started: bool = False,
) -> bool:
    """open → cancelled | expired, conditionally; True if this call made the change."""
    condition = [Shift.tenant_id == tenant_id, Shift.id == shift_id, Shift.status == "open"]
    if only_if_started:
        condition.append(Shift.start_time <= now)
    result = await session.execute(
        update(Shift).where(*condition).values(status=status, closed_at=now, updated_at=now)
    )
    changed: bool = result.rowcount == 1  # type: ignore[attr-defined]
    if changed:
        ShiftEventRepository(session, tenant_id).record(shift_id, status, at=now)
        await shift_changed(
            session, await reload_shift(session, tenant_id, shift_id), status, now=now
        )
    return changed


async def expire_shift(
    session: AsyncSession, tenant_id: str, shift_id: str, *, now: datetime
) -> bool:
    return await close_shift(session, tenant_id, shift_id, "expired", now=now, only_if_started=True)


async def cancel_pending_jobs(session: AsyncSession, tenant_id: str, shift_id: str) -> None:
    """A closed shift needs no more rounds and no expiry (the handlers would no-op anyway)."""
    await cancel_round_jobs(session, tenant_id, shift_id)
    await cancel_by_dedupe_key(session, tenant_id, expire_key(shift_id))


async def cancel_round_jobs(session: AsyncSession, tenant_id: str, shift_id: str) -> None:
    """The current fan-out generation's rounds and unfilled checks still to come."""
    fanout = await FanOutRepository(session, tenant_id).for_shift(shift_id)
    if fanout is None:
        return
    for round_ in from_document(fanout.ladder)[1:]:
        key = round_key(shift_id, fanout.generation, round_.number)
        await cancel_by_dedupe_key(session, tenant_id, key)
    for reason in UNFILLED_REASONS:
        key = unfilled_key(shift_id, fanout.generation, reason)
        await cancel_by_dedupe_key(session, tenant_id, key)


async def arm_expiry(session: AsyncSession, shift: Shift) -> None:
    """An open shift expires at its start (the job with this key replaces a cancelled one)."""
    await enqueue(
        session,
        EXPIRE,
        {"shift_id": shift.id},
        run_at=shift.start_time,
        tenant_id=shift.tenant_id,
        dedupe_key=expire_key(shift.id),
    )


def present(shift: Shift) -> ShiftOut:
    return ShiftOut(
        id=shift.id,
        status=shift.status,
        role_required=shift.role_required,
        start_time=shift.start_time,
        end_time=shift.end_time,
        tz=shift.tz,
        location=shift.location,
        notes=shift.notes,
        assigned_caregiver_id=shift.assigned_caregiver_id,
        filled_at=shift.filled_at,
        reconfirm_by=shift.reconfirm_by,
        created_at=shift.created_at,
    )
