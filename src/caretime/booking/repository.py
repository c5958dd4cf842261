"""Queries for providers, availability rules and appointments, always scoped to one tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.availability import Rule
from caretime.booking.models import Appointment, AvailabilityRule, Provider
from caretime.repository import TenantRepository
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import BookingPolicy
from caretime.tenancy.service import policy_of

# No occupied span is longer (visit ≤ 60 min + buffers ≤ 2 × 60, or one slot ≤ 240 min):
# a lower bound on occupied_start that turns overlap queries into bounded index range scans.
MAX_OCCUPIED = timedelta(hours=4)


def overlapping(start: datetime, end: datetime) -> ColumnElement[bool]:
    """Appointments whose occupied span overlaps [start, end)."""
    return and_(
        Appointment.occupied_start < end,
        Appointment.occupied_start > start - MAX_OCCUPIED,
        Appointment.occupied_end > start,
    )


def booked_at(now: datetime) -> ColumnElement[bool]:
    """Appointments still ahead of their visit at `now`: confirmed, or held and not yet due
    (these may be confirmed, cancelled or moved)."""
    held_live = and_(Appointment.status == "held", Appointment.hold_expires_at > now)
    return or_(Appointment.status == "confirmed", held_live)


def active_at(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Appointments that occupy their time at `now`: confirmed or arrived, or held and not
    yet due."""
    held_live = and_(Appointment.status == "held", Appointment.hold_expires_at > now)
    # Two comparisons rather than IN: an IN list is a parameter SQLAlchemy expands into the
    # SQL text on every execution, even of a statement built once (slot_reads).
    settled = or_(Appointment.status == "confirmed", Appointment.status == "arrived")
    return or_(settled, held_live)


class ProviderRepository(TenantRepository[Provider]):
    model = Provider


class RuleRepository(TenantRepository[AvailabilityRule]):
    model = AvailabilityRule

    async def rules(
        self, provider_ids: Sequence[str] | None, first: date, last: date
    ) -> dict[str, list[Rule]]:
        """Every rule that may apply on a date in first..last, by provider."""
        dated = and_(AvailabilityRule.kind != "weekly", AvailabilityRule.day.between(first, last))
        weekly = and_(
            AvailabilityRule.kind == "weekly",
            or_(AvailabilityRule.valid_until.is_(None), AvailabilityRule.valid_until >= first),
            or_(AvailabilityRule.valid_from.is_(None), AvailabilityRule.valid_from <= last),
        )
        statement = select(*_RULE_COLUMNS).where(
            AvailabilityRule.tenant_id == self.tenant_id, or_(dated, weekly)
        )
        if provider_ids is not None:
            statement = statement.where(AvailabilityRule.provider_id.in_(provider_ids))
        by_provider: dict[str, list[Rule]] = {}
        # Columns, not entities: on the session's connection, past the ORM's execution.
        connection = await self.session.connection()
        for row in await connection.execute(statement):
            rule = Rule(
                row.kind,
                row.start_minute,
                row.end_minute,
                row.day,
                row.weekdays,
                row.valid_from,
                row.valid_until,
            )
            by_provider.setdefault(row.provider_id, []).append(rule)
        return by_provider

    async def dated(self, provider_id: str, days: Sequence[date]) -> Sequence[AvailabilityRule]:
        return await self.all(
            self.select().where(
                AvailabilityRule.provider_id == provider_id,
                AvailabilityRule.kind != "weekly",
                AvailabilityRule.day.in_(days),
            )
        )

    async def templates(self, provider_id: str) -> Sequence[AvailabilityRule]:
        return await self.all(
            self.select()
            .where(AvailabilityRule.provider_id == provider_id, AvailabilityRule.kind == "weekly")
            .order_by(AvailabilityRule.id)
        )

    async def delete_dated(self, provider_id: str, days: Sequence[date]) -> None:
        await self.session.execute(
            delete(AvailabilityRule).where(
                AvailabilityRule.tenant_id == self.tenant_id,
                AvailabilityRule.provider_id == provider_id,
                AvailabilityRule.kind != "weekly",
                AvailabilityRule.day.in_(days),
            )
        )


_RULE_COLUMNS = (
    AvailabilityRule.provider_id,
    AvailabilityRule.kind,
    AvailabilityRule.start_minute,
    AvailabilityRule.end_minute,
    AvailabilityRule.day,
    AvailabilityRule.weekdays,
    AvailabilityRule.valid_from,
    AvailabilityRule.valid_until,
)


class AppointmentRepository(TenantRepository[Appointment]):
    model = Appointment

    async def by_idempotency_key(self, key: str) -> Appointment | None:
        return await self.first(self.select().where(Appointment.idempotency_key == key))

    async def active_between(
        self, provider_id: str, start: datetime, end: datetime, now: datetime
    ) -> Sequence[Appointment]:
        return await self.all(
            self.select()
            .where(
                Appointment.provider_id == provider_id,
                overlapping(start, end),
                active_at(now),
            )
            .order_by(Appointment.slot_start)
        )


async def booking_policy(session: AsyncSession, tenant_id: str) -> BookingPolicy:
    """The tenant's booking policy, for work that starts outside a request (replies, jobs)."""
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    return policy_of(tenant).booking


async def provider_of(session: AsyncSession, appointment: Appointment) -> Provider:
    provider = await ProviderRepository(session, appointment.tenant_id).get(appointment.provider_id)
    assert provider is not None  # appointments cascade with their provider
    return provider
