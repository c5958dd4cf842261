"""Queries for caregivers, shifts, fan-outs and offers, always scoped to one tenant."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Row,
    Select,
    String,
    any_,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import SkipConflicts, insert_rows, where_one_of
from caretime.db import is_postgres
from caretime.errors import Conflict
from caretime.messaging import Message, MessageEvent
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

    async def stop(self, shift_id: str) -> None:
        """Stop a fan-out whose shift was dropped: it waits for a re-fill (a new generation)."""
        await self.session.execute(
            update(FanOut)
            .where(FanOut.tenant_id == self.tenant_id, FanOut.shift_id == shift_id)
            .values(current_round=0)
        )

    async def restart_if_stopped(
        self, shift_id: str, ladder: dict[str, Any], now: datetime
    ) -> int | None:
        """Begin the next generation of a stopped fan-out; its number, or None if it is not
        stopped. Conditional, so of two concurrent restarts one begins it."""
        result = await self.session.execute(
            update(FanOut)
            .where(
                FanOut.tenant_id == self.tenant_id,
                FanOut.shift_id == shift_id,
                FanOut.current_round == 0,
            )
            .values(
                generation=FanOut.generation + 1, current_round=1, started_at=now, ladder=ladder
            )
            .returning(FanOut.generation)
        )
        return result.scalar_one_or_none()


class OfferRepository(TenantRepository[Offer]):
    model = Offer

    async def asking(
        self, phone: str, *, now: datetime, shift_id: str | None = None
    ) -> tuple[Offer, Shift] | None:
        """The offer whose question a reply from this number answers now (of that shift, if
        named), with its shift: `_asking`'s first."""
        of_the_number = (Caregiver.tenant_id == self.tenant_id, Caregiver.phone == phone)
        # The number's caregivers read first, as `asking_many` does and for its reason: on
        # PostgreSQL as one array (an InitPlan, run once: the planner cannot turn it into
        # the join it planned badly), elsewhere as a subquery.
        if is_postgres(self.session):
            ids = select(func.array_agg(Caregiver.id)).where(*of_the_number).scalar_subquery()
            # Cast: `= ANY (SELECT ...)` would compare with each row; this is one array.
            mine = Offer.caregiver_id == any_(cast(ids, ARRAY(String)))
        else:
            mine = Offer.caregiver_id.in_(select(Caregiver.id).where(*of_the_number))
        statement = self._asking(now).where(mine)
        if shift_id is not None:
            statement = statement.where(Offer.shift_id == shift_id)
        row = (await self.session.execute(statement.limit(1))).first()
        return None if row is None else (row.Offer, row.Shift)

    async def asking_many(
        self, phones: Collection[str], *, now: datetime
    ) -> dict[str, tuple[Offer, Shift]]:
        """`asking` for many numbers: the numbers' caregivers, then their offers. Two reads,
        not one join: the join's plan, without statistics on a fan-out a moment old
        (autovacuum analyses within a minute, a burst comes sooner), scanned every
        caregiver once per offer (1,000 × 1,000 rows, 0.3-4 s a batch)."""
        caregivers = select(Caregiver.id, Caregiver.phone).where(
            Caregiver.tenant_id == self.tenant_id
        )
        # One parameter for all the numbers (bulk.where_one_of): one prepared statement and
        # plan whatever the batch's size, not one per count of numbers.
        caregivers = where_one_of(self.session, caregivers, Caregiver.phone, sorted(phones))
        phone_of = {id_: phone for id_, phone in await self.session.execute(caregivers)}
        if not phone_of:
            return {}
        statement = where_one_of(
            self.session, self._asking(now), Offer.caregiver_id, sorted(phone_of)
        )
        found: dict[str, tuple[Offer, Shift]] = {}
        for row in await self.session.execute(statement):
            found.setdefault(phone_of[row.Offer.caregiver_id], (row.Offer, row.Shift))
        return found

    def _asking(self, now: datetime) -> Select[Offer, Shift]:
        """Offers that ask their question now (their shift has not started, they are not
        held for quiet hours), each with its shift: those whose shift is still open first,
        then the most recent. Loaded whole: this is the one read a reply to a filled shift
        needs (see claims._accept)."""
        still_open = case((Shift.status == "open", 0), else_=1)
        return (
            select(Offer, Shift)
            .join(Shift, (Shift.tenant_id == Offer.tenant_id) & (Shift.id == Offer.shift_id))
            .where(
                Offer.tenant_id == self.tenant_id,
                Shift.start_time > now,
                # An offer held for quiet hours has asked nothing yet.
                or_(Offer.held_until.is_(None), Offer.held_until <= now),
            )
            .order_by(still_open, Offer.sent_at.desc(), Offer.round.desc())
        )

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

    def with_message_status(self, shift_id: str) -> Select[Offer, str]:
        """The shift's offers, each with its message's status (read from messaging)."""
        return (
            select(Offer, _MESSAGE_STATUS)
            .outerjoin(Message, Message.id == Offer.message_id)
            .where(Offer.tenant_id == self.tenant_id, Offer.shift_id == shift_id)
        )

    async def counts(self, shift_id: str, generation: int) -> Sequence[Row[int, str, int]]:
        """(round, message status, offers) for the shift's fan-out generation."""
        statement = (
            select(Offer.round, _MESSAGE_STATUS, func.count())
            .outerjoin(Message, Message.id == Offer.message_id)
            .where(
                Offer.tenant_id == self.tenant_id,
                Offer.shift_id == shift_id,
                Offer.generation == generation,
            )
            .group_by(Offer.round, _MESSAGE_STATUS)
        )
        return (await self.session.execute(statement)).all()

    async def message_statuses(self, shift_id: str) -> Sequence[Row[Offer, str | None, datetime]]:
        """Every status change of the shift's offer messages, in the order messaging
        recorded them: (offer, status, at)."""
        statement = (
            select(Offer, MessageEvent.status, MessageEvent.received_at.label("at"))
            .join(MessageEvent, MessageEvent.message_id == Offer.message_id)
            .where(
                Offer.tenant_id == self.tenant_id,
                Offer.shift_id == shift_id,
                MessageEvent.applied.is_(True),
            )
            .order_by(MessageEvent.id)
        )
        return (await self.session.execute(statement)).all()


# An offer whose message is not written yet counts as queued, or held (quiet hours).
_MESSAGE_STATUS = case(
    (Message.status.is_not(None), Message.status),
    (Offer.held_until.is_not(None), "held"),
    else_="queued",
).label("message_status")


_OFFERED_BEFORE = SkipConflicts(("tenant_id", "shift_id", "caregiver_id", "generation", "round"))


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
