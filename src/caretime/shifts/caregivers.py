"""Caregivers: who can be offered shifts (roles, phone, active)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, exists
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.errors import Conflict, NotFound
from caretime.ids import new_id
from caretime.messaging.consent import opted_out_numbers
from caretime.shifts.models import Caregiver, CaregiverRole
from caretime.shifts.quiet import given_or_phone_zones
from caretime.shifts.repository import CaregiverRepository, insert_unique
from caretime.shifts.schemas import CaregiverCreate, CaregiverOut, CaregiverPatch

CHANNELS = ("sms", "voice")


class CaregiverNotFound(NotFound):
    problem = "caregiver-not-found"
    title = "No such caregiver"


class CaregiverExists(Conflict):
    problem = "caregiver-exists"
    title = "A caregiver with this id already exists"


async def create_caregiver(
    session: AsyncSession, tenant_id: str, body: CaregiverCreate, *, now: datetime
) -> CaregiverOut:
    repo = CaregiverRepository(session, tenant_id)
    caregiver_id = body.id or new_id("cg")
    caregiver = Caregiver(
        id=caregiver_id,
        name=body.name,
        phone=body.phone,
        tz=body.tz,
        tier=body.tier,
        tags=body.tags,
        max_weekly_hours=body.max_weekly_hours,
        active=body.active,
        created_at=now,
        updated_at=now,
    )
    duplicate = CaregiverExists(f"caregiver {caregiver_id!r} already exists")
    await insert_unique(repo, caregiver, duplicate)
    await repo.set_roles(caregiver_id, body.roles)
    return present(caregiver, body.roles, await _opted_out(session, tenant_id, [caregiver]))


async def get_caregiver(session: AsyncSession, tenant_id: str, caregiver_id: str) -> CaregiverOut:
    repo = CaregiverRepository(session, tenant_id)
    caregiver = await _require(repo, caregiver_id)
    roles = await repo.roles_of([caregiver_id])
    return present(
        caregiver, roles[caregiver_id], await _opted_out(session, tenant_id, [caregiver])
    )


async def update_caregiver(
    session: AsyncSession,
    tenant_id: str,
    caregiver_id: str,
    patch: CaregiverPatch,
    *,
    now: datetime,
) -> CaregiverOut:
    repo = CaregiverRepository(session, tenant_id)
    caregiver = await _require(repo, caregiver_id)
    for field in ("name", "phone", "active"):
        value = getattr(patch, field)
        if value is not None:
            setattr(caregiver, field, value)
    for field in ("tz", "tier", "max_weekly_hours", "tags"):
        if field in patch.model_fields_set:  # null clears these
            setattr(caregiver, field, getattr(patch, field))
    caregiver.updated_at = now
    await session.flush()
    if patch.roles is not None:
        await repo.set_roles(caregiver_id, patch.roles)
    roles = (await repo.roles_of([caregiver_id]))[caregiver_id]
    return present(caregiver, roles, await _opted_out(session, tenant_id, [caregiver]))


async def list_caregivers(
    session: AsyncSession,
    tenant_id: str,
    *,
    role: str | None,
    active: bool | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[CaregiverOut], str | None]:
    repo = CaregiverRepository(session, tenant_id)
    statement = repo.select()
    if active is not None:
        statement = statement.where(Caregiver.active.is_(active))
    if role is not None:
        statement = statement.where(_holds_role(tenant_id, role.strip().upper()))
    rows, next_cursor = await repo.page(statement, limit=limit, after=cursor)
    roles = await repo.roles_of([c.id for c in rows])
    opted_out = await _opted_out(session, tenant_id, rows)
    return [present(c, roles[c.id], opted_out) for c in rows], next_cursor


async def _opted_out(
    session: AsyncSession, tenant_id: str, rows: Sequence[Caregiver]
) -> set[tuple[str, str]]:
    """(phone, channel) pairs of these caregivers that opted out (texted STOP...)."""
    wanted = {(c.phone, channel) for c in rows for channel in CHANNELS}
    return await opted_out_numbers(session, tenant_id, wanted)


def _holds_role(tenant_id: str, role: str) -> ColumnElement[bool]:
    return exists().where(
        CaregiverRole.tenant_id == tenant_id,
        CaregiverRole.caregiver_id == Caregiver.id,
        CaregiverRole.role == role,
    )


async def _require(repo: CaregiverRepository, caregiver_id: str) -> Caregiver:
    caregiver = await repo.get(caregiver_id)
    if caregiver is None:
        raise CaregiverNotFound(f"no caregiver {caregiver_id!r}")
    return caregiver


def present(
    caregiver: Caregiver, roles: Sequence[str], opted_out: set[tuple[str, str]]
) -> CaregiverOut:
    return CaregiverOut(
        id=caregiver.id,
        name=caregiver.name,
        phone=caregiver.phone,
        roles=sorted(roles),
        active=caregiver.active,
        tz=caregiver.tz,
        tier=caregiver.tier,
        tags=caregiver.tags or [],
        max_weekly_hours=caregiver.max_weekly_hours,
        opted_out=[c for c in CHANNELS if (caregiver.phone, c) in opted_out],
        zones=list(given_or_phone_zones(caregiver.tz, caregiver.phone)),
        created_at=caregiver.created_at,
        updated_at=caregiver.updated_at,
    )
