"""Queries for outreach: tenant-scoped by default, bulk where a batch needs it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Executable, Select, and_, bindparam, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from caretime import bulk_text, driver_reads
from caretime.bulk import (
    PreparedInsert,
    SkipConflicts,
    insert_rows,
    prepared_insert,
    probe_each,
    run_prepared,
    unnested_keys,
    where_one_of,
)
from caretime.db import is_postgres, locking
from caretime.messaging import Message
from caretime.outreach.models import (
    LIVE_INDEX,
    LIVE_PREDICATE,
    PENDING,
    Call,
    CallAttempt,
    CallSeries,
    Contact,
    OutreachBatch,
    contact_id_for,
)
from caretime.repository import TenantRepository
from caretime.tenancy.models import Tenant

_KNOWN_IDS = SkipConflicts(("id",))
# PostgreSQL's SQLSTATE for a row a unique index refuses (a contact written twice).
UNIQUE_VIOLATION = "23505"
# A second live call for a (number, purpose) is not written: the partial unique index says so.
_LIVE_TWINS = SkipConflicts(("contact_id", "purpose"), LIVE_PREDICATE)
CHUNK = 5000


class LiveCall(NamedTuple):
    """The call that makes another one for the same number and purpose a duplicate."""

    id: str
    status: str
    scheduled_at: datetime


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
        self,
        columns: Mapping[str, Sequence[Any]],
        shared: Mapping[str, Any],
        *,
        prepared: PreparedInsert | None = None,
    ) -> set[str]:
        """New calls, one per position of `columns`, each also with the `shared` values.
        Returns the ids written: a call whose number and purpose already has a live call
        (and that does not allow duplicates) is skipped. `prepared`: `plain_calls_insert`
        of these very `columns` and `shared` values, built ahead (PostgreSQL; it is what is
        sent, so it must not be of other rows)."""
        if not columns["id"]:
            return set()
        shared = {**shared, "tenant_id": self.tenant_id}
        if is_postgres(self.session) and await self._insert_all(columns, shared, prepared):
            return set(columns["id"])
        ids = await insert_rows(
            self.session, Call, columns, shared=shared, skip=_LIVE_TWINS, returning="id"
        )
        return set(ids)

    async def _insert_all(
        self,
        columns: Mapping[str, Sequence[Any]],
        shared: Mapping[str, Any],
        prepared: PreparedInsert | None,
    ) -> bool:
        """The calls as a plain INSERT, in a savepoint; False (nothing written) when one of
        them is a second live call for its number and purpose. Screening has usually taken
        those out, and a plain INSERT is a quarter cheaper for PostgreSQL than one with
        ON CONFLICT ... RETURNING (each row's speculative insertion, and the ids sent back):
        the conflict clause is kept for when the index refuses (a concurrent batch wrote
        the call after screening). The index decides either way."""
        if prepared is None:
            split = bulk_text.splitter(self.session)
            prepared = plain_calls_insert(split, self.tenant_id, columns, shared)
        return await _inserted_all(self.session, prepared, lambda exc: LIVE_INDEX in str(exc.orig))

    async def live_for(self, numbers: Sequence[str]) -> dict[tuple[str, str], LiveCall]:
        """The live (exclusive) call of each (number, purpose) among these numbers, looked
        up by contact id (derived from tenant and number: no tenant condition is needed),
        one probe of the live-call index per number (`bulk.probe_each`)."""
        return await self.live_by_contact(
            {contact_id_for(self.tenant_id, number): number for number in numbers}
        )

    async def live_by_contact(
        self, by_contact: Mapping[str, str]
    ) -> dict[tuple[str, str], LiveCall]:
        """`live_for` of the numbers of these contact ids (contact id → number)."""
        statement = select(
            Call.contact_id, Call.purpose, Call.id, Call.status, Call.scheduled_at
        ).where(LIVE_PREDICATE)
        rows = await self._in_chunks(
            list(by_contact),
            lambda chunk: probe_each(self.session, statement, Call.contact_id, chunk),
        )
        return _live_by_number(rows, by_contact)

    async def known_and_live(
        self, by_contact: Mapping[str, str]
    ) -> tuple[set[str] | None, dict[tuple[str, str], LiveCall]]:
        """`live_by_contact`, and on PostgreSQL which of these contact ids have a contact row
        (None elsewhere), in the same statements: a contact's row is probed first, and its
        live calls only when it has one (a number never called has neither), so a batch of
        new numbers costs the one probe per number the live calls alone did."""
        if not is_postgres(self.session):
            return None, await self.live_by_contact(by_contact)
        rows = await self._in_chunks(
            list(by_contact), lambda chunk: _known_and_live(self.tenant_id, chunk)
        )
        return {row[0] for row in rows}, _live_by_number(rows, by_contact)

    async def _in_chunks(
        self, contact_ids: Sequence[str], statement: Callable[[Sequence[str]], Executable]
    ) -> list[Sequence[Any]]:
        """The rows of `statement` for these contact ids, CHUNK ids a statement."""
        rows: list[Sequence[Any]] = []
        for start in range(0, len(contact_ids), CHUNK):
            chunk = contact_ids[start : start + CHUNK]
            rows.extend((await self.session.execute(statement(chunk))).all())
        return rows

    async def get_for_update(self, call_id: str) -> Call | None:
        return await self.first(locking(self.select().where(Call.id == call_id)))

    async def counts_by_status(self, batch_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(Call.status, func.count())
            .where(Call.tenant_id == self.tenant_id, Call.batch_id == batch_id)
            .group_by(Call.status)
        )
        return {status: count for status, count in rows.all()}

    async def due_in_minute(self, minute: int, now: datetime, *, limit: int) -> Sequence[Call]:
        """The calls of `minute` due by `now` and still scheduled, locked, in due order. A
        concurrent claimer waits for these locks and then no longer finds them scheduled:
        each call is claimed by one transaction, whoever else is looking."""
        statement = (
            self.select()
            .where(
                Call.scheduled_minute == minute,
                Call.status == PENDING,
                Call.scheduled_at <= now,
            )
            .order_by(Call.scheduled_at, Call.id)
            .limit(limit)
        )
        return await self.all(locking(statement))

    async def next_due_in_minute(self, minute: int) -> datetime | None:
        """When the first call of `minute` still scheduled is due (None: none is left)."""
        return await self.session.scalar(
            select(func.min(Call.scheduled_at)).where(
                Call.tenant_id == self.tenant_id,
                Call.status == PENDING,
                Call.scheduled_minute == minute,
            )
        )

    async def unsent_messages(self, minute: int, *, before: datetime) -> list[tuple[str, datetime]]:
        """(id, created) of the voice messages of `minute`'s started calls (their current
        attempt's) still waiting to be handed over, queued before `before`."""
        statement = (
            select(Message.id, Message.created_at)
            .join(CallAttempt, CallAttempt.message_id == Message.id)
            .join(Call, (Call.id == CallAttempt.call_id) & (Call.attempts == CallAttempt.number))
            .where(
                Call.tenant_id == self.tenant_id,
                Call.scheduled_minute == minute,
                Call.status == "dispatching",
                Message.status == "queued",
                Message.provider_id.is_(None),
                Message.created_at < before,
            )
        )
        return [(id_, created) for id_, created in await self.session.execute(statement)]

    async def move(self, call: Call, *, at: datetime, now: datetime, pinned: bool) -> None:
        call.scheduled_at = at
        call.scheduled_minute = int(at.timestamp()) // 60  # as writing.minute_of
        call.pinned = pinned
        call.version += 1
        call.updated_at = now
        await self.session.flush()


class SeriesRepository(TenantRepository[CallSeries]):
    model = CallSeries

    async def get_for_update(self, series_id: str) -> CallSeries | None:
        return await self.first(locking(self.select().where(CallSeries.id == series_id)))

    async def occurrences(self, series_id: str, *, limit: int) -> Sequence[Call]:
        """The series' latest calls, oldest first."""
        latest = await self.session.scalars(
            select(Call)
            .where(Call.tenant_id == self.tenant_id, Call.series_id == series_id)
            .order_by(Call.scheduled_at.desc())
            .limit(limit)
        )
        return list(reversed(latest.all()))


class AttemptView(NamedTuple):
    """A call attempt as `GET /calls/{id}` shows it (read without loading an entity)."""

    number: int
    status: str
    message_id: str | None
    started_at: datetime
    ended_at: datetime | None
    history: list[dict[str, Any]]
    disposition: str | None
    summary: str | None


class CallView(NamedTuple):
    """A call as `GET /calls/{id}` reads it (no entity): Call's columns, in the table's
    order, by its attribute names (tests/test_call_read.py checks they are the same)."""

    id: str
    batch_id: str | None
    series_id: str | None
    contact_id: str
    name: str
    phone_e164: str
    tz: str
    zones: list[str]
    status: str
    purpose: str
    allow_duplicate: bool
    script: str | None
    variables: dict[str, Any] | None
    scheduled_at: datetime
    scheduled_minute: int
    pinned: bool
    version: int
    attempts: int
    max_attempts: int
    retry_delay_seconds: int
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    tenant_id: str


_CALL_VIEW = tuple(Call.__table__.c[name] for name in CallView._fields)
_CALL_WIDTH = len(_CALL_VIEW)
_ATTEMPT_VIEW = tuple(getattr(CallAttempt, name) for name in AttemptView._fields)
# The call's columns and, beside each of its attempts, that attempt's (none: one row of
# NULLs), in one statement built once: GET /calls/{id} runs it on every request.
_CALL_WITH_ATTEMPTS = (
    select(*_CALL_VIEW, *(column.label(f"attempt_{column.key}") for column in _ATTEMPT_VIEW))
    .outerjoin(
        CallAttempt,
        and_(CallAttempt.call_id == Call.id, CallAttempt.tenant_id == Call.tenant_id),
    )
    .where(Call.tenant_id == bindparam("tenant_id"), Call.id == bindparam("call_id"))
    .order_by(CallAttempt.number)
)


async def call_with_attempts(
    engine: AsyncEngine, tenant_id: str, call_id: str
) -> tuple[CallView | None, list[AttemptView]]:
    """The call (None if the tenant has no call by that id) and its attempts by
    number, in one round trip on a connection of `engine`'s pool borrowed for it alone, the
    statement sent by the driver itself (asyncpg; sqlite3 in one hop). Through a SQLAlchemy
    Connection, its execution (the compiled cache's lookup of a 32-column join, the cursor
    and result around the rows, the greenlet hops) was ~0.15 ms of a `GET /calls/{id}`'s
    ~0.55 ms of CPU on PostgreSQL (docs/benchmarks.md, "calls4"). The columns' types convert
    nothing in asyncpg's rows (instants come aware in UTC, JSON decoded by the codec
    SQLAlchemy's dialect sets on each connection); sqlite3's are converted by their types."""
    params = {"tenant_id": tenant_id, "call_id": call_id}
    rows = await driver_reads.fetch_all(engine, _CALL_WITH_ATTEMPTS, params)
    if not rows:
        return None, []
    attempts = [AttemptView(*row[_CALL_WIDTH:]) for row in rows if row[_CALL_WIDTH] is not None]
    return CallView(*rows[0][:_CALL_WIDTH]), attempts


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

    async def started_since_for(
        self, contact_ids: Sequence[str], since: datetime
    ) -> dict[str, list[datetime]]:
        """`started_since` for many contacts in one statement, by contact."""
        found: dict[str, list[datetime]] = {}
        if not contact_ids:
            return found
        statement = select(CallAttempt.contact_id, CallAttempt.started_at).where(
            CallAttempt.tenant_id == self.tenant_id, CallAttempt.started_at >= since
        )
        rows = await self.session.execute(
            where_one_of(self.session, statement, CallAttempt.contact_id, contact_ids)
        )
        for contact_id, started_at in rows:
            found.setdefault(contact_id, []).append(started_at)
        return found


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

    async def lock_all(self, contact_ids: Sequence[str]) -> None:
        """`lock` for many contacts in one statement, taken in id order (so that two
        transactions locking overlapping sets cannot deadlock)."""
        if not contact_ids:
            return
        statement = select(Contact.id).where(Contact.tenant_id == self.tenant_id)
        statement = where_one_of(self.session, statement, Contact.id, contact_ids)
        await self.session.execute(locking(statement.order_by(Contact.id)))

    async def insert_missing(
        self,
        columns: Mapping[str, Sequence[Any]],
        *,
        now: datetime,
        known: set[str] | None = None,
    ) -> None:
        """Contacts not known yet (ids are derived from the number: known ones are skipped).

        `known`: the contact ids this request knows to have a row (its screening found them,
        `CallRepository.known_and_live`, or it wrote them: added here), PostgreSQL. The others
        are then written by a plain INSERT in a savepoint, a fifth cheaper for PostgreSQL than
        one with ON CONFLICT (each row's speculative insertion); the conflict clause is kept
        for when one of them exists after all. Contacts are never deleted, so a contact found
        stays found. The primary key decides either way."""
        shared = {"tenant_id": self.tenant_id, "created_at": now}
        if known is None or not is_postgres(self.session):
            await insert_rows(self.session, Contact, columns, shared=shared, skip=_KNOWN_IDS)
            return
        new = _first_rows_without(columns, known)
        if new["id"]:
            plain = prepared_insert(bulk_text.splitter(self.session), Contact, new, shared=shared)
            if not await _inserted_all(self.session, plain, _duplicate):
                await insert_rows(self.session, Contact, new, shared=shared, skip=_KNOWN_IDS)
        known.update(columns["id"])  # this transaction sees them now


def plain_calls_insert(
    split: str, tenant_id: str, columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any]
) -> PreparedInsert:
    """`CallRepository.insert_new`'s plain INSERT of these calls (PostgreSQL), built without a
    session (`split`: its `bulk_text.splitter`)."""
    return prepared_insert(split, Call, columns, shared={**shared, "tenant_id": tenant_id})


async def _inserted_all(
    session: AsyncSession, plain: PreparedInsert, expected: Callable[[IntegrityError], bool]
) -> bool:
    """The rows' `plain` INSERT, in a savepoint; False (nothing written) when an `expected`
    refusal undid it (the caller then writes them with its conflict clause); any other
    refusal is raised."""
    try:
        async with session.begin_nested():
            await run_prepared(session, plain)
    except IntegrityError as exc:
        if not expected(exc):
            raise
        return False
    return True


def _duplicate(exc: IntegrityError) -> bool:
    """A row a unique index refused (a contact written twice: its primary key's or its
    number's)."""
    return getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION


def _first_rows_without(
    columns: Mapping[str, Sequence[Any]], ids: Set[str]
) -> Mapping[str, Sequence[Any]]:
    """The rows (as columns) whose `id` is not one of `ids`, each id's first row only (a
    number may be called for several purposes in one batch: its first name is kept)."""
    keep, taken = [], set()
    for i, id_ in enumerate(columns["id"]):
        if id_ not in ids and id_ not in taken:
            taken.add(id_)
            keep.append(i)
    if len(keep) == len(columns["id"]):
        return columns
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def _live_by_number(
    rows: Sequence[Sequence[Any]], by_contact: Mapping[str, str]
) -> dict[tuple[str, str], LiveCall]:
    """The live calls among (contact id, purpose, call id, status, time) rows, by (number,
    purpose); a row without a call (a contact that has none) is skipped."""
    return {(by_contact[contact], purpose): LiveCall(call_id, status, at)
            for contact, purpose, call_id, status, at in rows if call_id is not None}  # fmt: skip


def _known_and_live(tenant_id: str, contact_ids: Sequence[str]) -> Select[Any]:
    """Per contact id that has a row: the id, and each of its live calls (purpose, id,
    status, time), or one row of NULLs when it has none. Each probe behind `OFFSET 0`, as
    `bulk.probe_each` says why: an index probe per id, whatever the statistics."""
    keys = unnested_keys(contact_ids)
    known = (
        select(Contact.id)
        .where(Contact.id == keys.c.key, Contact.tenant_id == tenant_id)
        .offset(0)
        .lateral("known")
    )
    live = (
        select(Call.purpose, Call.id, Call.status, Call.scheduled_at)
        .where(Call.contact_id == known.c.id, LIVE_PREDICATE)
        .offset(0)
        .lateral("live")
    )
    return (
        select(known.c.id, live.c.purpose, live.c.id, live.c.status, live.c.scheduled_at)
        .select_from(keys)
        .join(known, true())
        .outerjoin(live, true())
    )


async def lock_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Serialise capacity planning per tenant (PostgreSQL row lock, held until commit;
    SQLite already has a single writer)."""
    await session.execute(locking(select(Tenant.id).where(Tenant.id == tenant_id)))


def _dialect_insert(session: AsyncSession, model: Any) -> Any:
    if is_postgres(session):
        return postgresql.insert(model)
    return sqlite.insert(model)
