"""Queries for outreach: tenant-scoped by default, bulk where a batch needs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import SkipConflicts, insert_rows
from caretime.db import is_postgres, locking
from caretime.outreach.models import PENDING, Call, CallAttempt, Contact, OutreachBatch
from caretime.repository import TenantRepository
from caretime.tenancy.models import Tenant

_KNOWN_IDS = SkipConflicts(("id",))


class CallRepository(TenantRepository[Call]):
    model = Call

    async def minute_load(self, first_minute: int, end_minute: int) -> dict[int, int]:
        """Calls still to come per epoch minute in [first, end): the planner's capacity input."""
        rows = await self.session.execute(
            select(Call.scheduled_minute, func.count())
            .where(
                Call.tenant_id == self.tenant_id,
                Call.status == PENDING,
                Call.scheduled_minute >= first_minute,
                Call.scheduled_minute < end_minute,
            )
            .group_by(Call.scheduled_minute)
        )
        return {minute: count for minute, count in rows.all()}

    async def insert_new(
        self, columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any]
    ) -> None:
        """New calls, one per position of `columns`, each also with the `shared` values."""
        shared = {**shared, "tenant_id": self.tenant_id}
        await insert_rows(self.session, Call, columns, shared=shared)

    async def get_for_update(self, call_id: str) -> Call | None:
        return await self.first(locking(self.select().where(Call.id == call_id)))

    async def counts_by_status(self, batch_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(Call.status, func.count())
            .where(Call.tenant_id == self.tenant_id, Call.batch_id == batch_id)
            .group_by(Call.status)
        )
        return {status: count for status, count in rows.all()}

    async def move(self, call: Call, *, at: datetime, now: datetime, pinned: bool) -> None:
        call.scheduled_at = at
        call.scheduled_minute = int(at.timestamp()) // 60
        call.pinned = pinned
        call.version += 1
        call.updated_at = now
        await self.session.flush()


class AttemptRepository(TenantRepository[CallAttempt]):
    model = CallAttempt

    async def for_call(self, call_id: str) -> Sequence[CallAttempt]:
        return await self.all(
            self.select().where(CallAttempt.call_id == call_id).order_by(CallAttempt.number)
        )

    async def started_since(self, contact_id: str, since: datetime) -> list[datetime]:
        rows = await self.session.scalars(
            select(CallAttempt.started_at).where(
                CallAttempt.tenant_id == self.tenant_id,
                CallAttempt.contact_id == contact_id,
                CallAttempt.started_at >= since,
            )
        )
        return list(rows)


class BatchRepository(TenantRepository[OutreachBatch]):
    model = OutreachBatch

    async def by_idempotency_key(self, key: str) -> OutreachBatch | None:
        return await self.first(self.select().where(OutreachBatch.idempotency_key == key))

    async def claim_key(self, values: dict[str, Any]) -> bool:
        """Insert the batch row unless its Idempotency-Key is taken. On PostgreSQL a
        concurrent twin waits here until the first commits, then sees its row."""
        statement = _dialect_insert(self.session, OutreachBatch).on_conflict_do_nothing(
            index_elements=[OutreachBatch.tenant_id, OutreachBatch.idempotency_key]
        )
        result = await self.session.execute(
            statement.values({**values, "tenant_id": self.tenant_id})
        )
        inserted: int = result.rowcount  # type: ignore[attr-defined]
        return inserted == 1

    async def finish(self, batch_id: str, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(OutreachBatch)
            .where(OutreachBatch.tenant_id == self.tenant_id, OutreachBatch.id == batch_id)
            .values(values)
        )


class ContactRepository(TenantRepository[Contact]):
    model = Contact

    async def lock(self, contact_id: str) -> None:
        """Serialise decisions about one contact (caps) until the transaction ends."""
        await self.session.execute(
            locking(
                select(Contact.id).where(
                    Contact.tenant_id == self.tenant_id, Contact.id == contact_id
                )
            )
        )

    async def insert_missing(self, columns: Mapping[str, Sequence[Any]], *, now: datetime) -> None:
        """Contacts not known yet (ids are derived from the number: known ones are skipped)."""
        shared = {"tenant_id": self.tenant_id, "created_at": now}
        await insert_rows(self.session, Contact, columns, shared=shared, skip=_KNOWN_IDS)


async def lock_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Serialise capacity planning per tenant (PostgreSQL row lock, held until commit;
    SQLite already has a single writer)."""
    await session.execute(locking(select(Tenant.id).where(Tenant.id == tenant_id)))


def _dialect_insert(session: AsyncSession, model: Any) -> Any:
    if is_postgres(session):
        return postgresql.insert(model)
    return sqlite.insert(model)
