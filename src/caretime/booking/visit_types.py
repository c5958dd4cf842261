"""Visit types: the kinds of visit a provider offers (length and buffers), and the shape a
reservation or slot search uses. Takes the session first, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.errors import VisitTypeExists, VisitTypeNotFound
from caretime.booking.grid import VisitShape
from caretime.booking.models import VisitType
from caretime.booking.schemas import VisitTypeIn
from caretime.booking.service import require_provider
from caretime.tenancy.policy import BookingPolicy


def default_shape(policy: BookingPolicy) -> VisitShape:
    """A reservation without a visit type is one grid slot, without buffers."""
    return VisitShape(policy.slot_minutes)


def shape_of(visit_type: VisitType) -> VisitShape:
    return VisitShape(visit_type.minutes, visit_type.buffer_before, visit_type.buffer_after)


async def create(
    session: AsyncSession, tenant_id: str, provider_id: str, body: VisitTypeIn, *, now: datetime
) -> VisitType:
    await require_provider(session, tenant_id, provider_id)
    row = VisitType(
        tenant_id=tenant_id,
        provider_id=provider_id,
        id=body.id,
        name=body.name,
        minutes=body.minutes,
        buffer_before=body.buffer_before,
        buffer_after=body.buffer_after,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise VisitTypeExists(
            f"provider {provider_id!r} already has a visit type {body.id!r}"
        ) from None
    return row


async def list_for(session: AsyncSession, tenant_id: str, provider_id: str) -> Sequence[VisitType]:
    await require_provider(session, tenant_id, provider_id)
    return await of_providers(session, tenant_id, [provider_id], None)


async def of_providers(
    session: AsyncSession,
    tenant_id: str,
    provider_ids: Sequence[str] | None,
    visit_type_id: str | None,
) -> Sequence[VisitType]:
    statement = select(VisitType).where(VisitType.tenant_id == tenant_id)
    if provider_ids is not None:
        statement = statement.where(VisitType.provider_id.in_(provider_ids))
    if visit_type_id is not None:
        statement = statement.where(VisitType.id == visit_type_id)
    order = (VisitType.provider_id, VisitType.id)
    return (await session.scalars(statement.order_by(*order))).all()


async def require(
    session: AsyncSession, tenant_id: str, provider_id: str, visit_type_id: str
) -> VisitType:
    found = await of_providers(session, tenant_id, [provider_id], visit_type_id)
    if not found:
        raise not_offered(provider_id, visit_type_id)
    return found[0]


def not_offered(provider_id: str, visit_type_id: str | None) -> VisitTypeNotFound:
    return VisitTypeNotFound(f"provider {provider_id!r} has no visit type {visit_type_id!r}")


async def remove(
    session: AsyncSession, tenant_id: str, provider_id: str, visit_type_id: str
) -> None:
    """Appointments already made keep their times: they carry their own occupied span."""
    await require(session, tenant_id, provider_id, visit_type_id)
    await session.execute(
        delete(VisitType).where(
            VisitType.tenant_id == tenant_id,
            VisitType.provider_id == provider_id,
            VisitType.id == visit_type_id,
        )
    )
