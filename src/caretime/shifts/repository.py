"""Queries for caregivers, shifts, fan-outs and offers, always scoped to one tenant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Row,
    String,
    Text,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import SkipConflicts, insert_rows
from caretime.db import is_postgres
from caretime.errors import Conflict
from caretime.repository import TenantRepository
from caretime.shifts.models import Caregiver, CaregiverRole, FanOut, Offer, Shift, ShiftEvent


class CaregiverRepository(TenantRepository[Caregiver]):
    model = Caregiver

    async def roles_of(self, caregiver_ids: Sequence[str]) -> dict[str, list[str]]:
        rows = await self.session.execute(
            select(CaregiverRole.caregiver_id, CaregiverRole.role)
            .where(
                CaregiverRole.tenant_id == self.tenant_id,
                CaregiverRole.caregiver_id.in_(caregiver_ids),
            )
            .order_by(CaregiverRole.role)
        )
        roles: dict[str, list[str]] = {id_: [] for id_ in caregiver_ids}
        for caregiver_id, role in rows:
            roles[caregiver_id].append(role)
        return roles

    async def set_roles(self, caregiver_id: str, roles: Sequence[str]) -> None:
        await self.session.execute(
            delete(CaregiverRole).where(
                CaregiverRole.tenant_id == self.tenant_id,
                CaregiverRole.caregiver_id == caregiver_id,
            )
        )
        await self.session.execute(
            insert(CaregiverRole),
            [{"tenant_id": self.tenant_id, "caregiver_id": caregiver_id, "role": r} for r in roles],
        )

    async def by_phone(self, phone: str) -> Sequence[Caregiver]:
        return await self.all(self.select().where(Caregiver.phone == phone))


class ShiftRepository(TenantRepository[Shift]):
    model = Shift


class FanOutRepository(TenantRepository[FanOut]):
    model = FanOut

    async def for_shift(self, shift_id: str) -> FanOut | None:
        return await self.first(self.select().where(FanOut.shift_id == shift_id))

    async def insert_once(self, row: dict[str, Any]) -> bool:
        """Start the fan-out unless one exists. A concurrent twin waits on the primary key
        and then inserts nothing: the database decides which request fans out."""
        statement = _insert_ignore(self.session, FanOut).values(tenant_id=self.tenant_id, **row)
        result = await self.session.execute(statement.returning(FanOut.shift_id))
        return result.first() is not None


class OfferRepository(TenantRepository[Offer]):
    model = Offer

    async def insert_new(
        self, columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any]
    ) -> list[str]:
        """Insert offers, skipping any (shift, caregiver, round) that exists; returns the ids
        actually inserted, which are the only ones that may be messaged."""
        return await insert_rows(
            self.session,
            Offer,
            columns,
            shared={**shared, "tenant_id": self.tenant_id},
            skip=_OFFERED_BEFORE,
            returning="id",
        )

    def for_shift(self, shift_id: str) -> Any:
        return self.select().where(Offer.shift_id == shift_id)

    async def copy_message_status(
        self, status: str, message_ids: Mapping[str, str]
    ) -> Sequence[Row[str, str, str]]:
        """Set the status (and message id) of these offers (offer id → message id); returns
        (id, shift_id, caregiver_id) of each offer updated."""
        statement = update(Offer).values(message_status=status)
        if is_postgres(self.session):
            # A join with the given pairs: linear, whatever the table's statistics say (an
            # IN list was filtered row by row when the planner thought the table small).
            # Arrays travel as text[] (see caretime.bulk), compared as varchar (the key's type).
            given = (
                func.unnest(
                    literal(list(message_ids), ARRAY(Text)),
                    literal(list(message_ids.values()), ARRAY(Text)),
                )
                .table_valued("offer_id", "message_id")
                .render_derived(with_types=False)
            )
            statement = statement.where(Offer.id == cast(given.c.offer_id, String)).values(
                message_id=given.c.message_id
            )
        else:
            statement = statement.where(Offer.id.in_(list(message_ids))).values(
                message_id=case(dict(message_ids), value=Offer.id)
            )
        result = await self.session.execute(
            statement.where(Offer.tenant_id == self.tenant_id)
            .returning(Offer.id, Offer.shift_id, Offer.caregiver_id)
            .execution_options(synchronize_session="fetch")
        )
        return result.all()

    async def counts(self, shift_id: str) -> Sequence[Any]:
        statement = (
            select(Offer.round, Offer.message_status, func.count())
            .where(Offer.tenant_id == self.tenant_id, Offer.shift_id == shift_id)
            .group_by(Offer.round, Offer.message_status)
        )
        return (await self.session.execute(statement)).all()


_OFFERED_BEFORE = SkipConflicts(("tenant_id", "shift_id", "caregiver_id", "round"))


class ShiftEventRepository(TenantRepository[ShiftEvent]):
    model = ShiftEvent

    def record(
        self,
        shift_id: str,
        kind: str,
        *,
        at: datetime,
        caregiver_id: str | None = None,
        offer_id: str | None = None,
        **details: Any,
    ) -> ShiftEvent:
        event = ShiftEvent(
            shift_id=shift_id,
            kind=kind,
            at=at,
            caregiver_id=caregiver_id,
            offer_id=offer_id,
            details=details,
        )
        return self.add(event)

    async def record_many(
        self,
        kind: str,
        *,
        at: datetime,
        offers: Sequence[Row[str, str, str]],
        details: Sequence[dict[str, Any]],
    ) -> None:
        """One event per offer (id, shift_id, caregiver_id), written in one statement."""
        await insert_rows(
            self.session,
            ShiftEvent,
            {
                "shift_id": [offer.shift_id for offer in offers],
                "caregiver_id": [offer.caregiver_id for offer in offers],
                "offer_id": [offer.id for offer in offers],
                "details": details,
            },
            shared={"tenant_id": self.tenant_id, "kind": kind, "at": at},
        )


async def insert_unique(repo: TenantRepository[Any], row: Any, duplicate: Conflict) -> None:
    """Insert one row keyed by a caller's id; the primary key, not a prior read, decides
    whether it already exists (two concurrent creates get one 201 and one 409). The row is
    added inside the SAVEPOINT, so rolling it back also forgets the object."""
    try:
        async with repo.session.begin_nested():
            repo.add(row)
            await repo.session.flush()
    except IntegrityError:
        raise duplicate from None


def _insert_ignore(session: AsyncSession, model: type[Any]) -> Any:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).on_conflict_do_nothing()
