"""A new hold written in as few statements as the database allows (docs/booking.md,
"Reserving"); what it reads first is `placing`'s.

The hold, its `appointment.held` event and, once a minute per tenant, the job that sweeps
that minute's expired holds (`booking.expire_holds`). On PostgreSQL it is one statement: the
hold is inserted with ON CONFLICT DO NOTHING, so the exclusion constraint decides without an
error, a SAVEPOINT or an advisory lock (a speculative insert that meets an uncommitted
overlapping one waits for it, then does nothing if it committed; it never waits while
holding a conflicting row, so overlapping inserts cannot deadlock), and the event and the
job are inserted from the hold's RETURNING, so they exist exactly when the hold does. On
SQLite, three statements under the single writer: the trigger refuses an overlap by aborting
its statement alone (SQLite rolls back a failed statement, not the transaction). A hold that
is all its request writes is its own transaction (`write_alone`): on PostgreSQL that one
statement in autocommit, on SQLite the three in one hop (sqlite_hold).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Select,
    Table,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from caretime import pg_direct
from caretime.booking import placing, sqlite_hold
from caretime.booking.events import HELD
from caretime.booking.models import Appointment
from caretime.clock import isoformat_z
from caretime.db import is_postgres
from caretime.dispatch import enqueue
from caretime.dispatch.models import DEDUPE_PREDICATE, Job
from caretime.dispatch.queue import DEFAULT_MAX_ATTEMPTS, scoped_dedupe_key
from caretime.dispatch.wakeup import mark_enqueued
from caretime.events.actor import current_actor
from caretime.events.models import Event
from caretime.events.webhooks.outbox import deliver_events
from caretime.ids import new_id

EXPIRE_HOLDS = "booking.expire_holds"
_APPOINTMENTS = cast(Table, Appointment.__table__)
_EVENTS = cast(Table, Event.__table__)
_JOBS = cast(Table, Job.__table__)


def sweep_minute(deadline: datetime) -> datetime:
    """The minute boundary at or after `deadline`: when the sweep that expires it runs."""
    epoch = deadline.timestamp()
    return datetime.fromtimestamp(math.ceil(epoch / 60) * 60, UTC)


def sweep_key(tenant_id: str, deadline: datetime) -> str:
    """The dedupe key of the sweep job for `deadline`'s minute: one live job per minute."""
    key = scoped_dedupe_key(tenant_id, _sweep_dedupe(sweep_minute(deadline)))
    assert key is not None
    return key


async def write_hold(
    session: AsyncSession, hold: Appointment, event_data: dict[str, Any], endpoints: list[str]
) -> bool:
    """Insert `hold` (a transient, complete Appointment), its event and its minute's sweep job
    if not there yet. False, with nothing written, if an active visit overlaps it or another
    reservation has its idempotency key."""
    event_id = new_id("evt")
    sweep_at = sweep_minute(hold.hold_expires_at)
    write = _write_postgres if is_postgres(session) else _write_sqlite
    written, sweep_job = await write(session, hold, event_id, event_data, sweep_at)
    if not written:
        return False
    if sweep_job is not None:
        mark_enqueued(session, sweep_at)  # the commit wakes the workers (once a minute)
    if endpoints:
        await deliver_events(session, hold.tenant_id, endpoints, [event_id], now=hold.created_at)
    return True


async def write_alone(
    connection: AsyncConnection,
    session: AsyncSession,
    hold: Appointment,
    event_data: dict[str, Any],
) -> bool:
    """write_hold for a hold whose request writes nothing else, as a transaction of its own:
    on PostgreSQL one statement on the autocommit `connection` (no BEGIN or COMMIT), on
    SQLite BEGIN IMMEDIATE to COMMIT in one hop to the writer's thread (sqlite_hold). The
    request's `session` only wakes the workers when this wrote the minute's sweep job (its
    commit sends the NOTIFY, once a minute)."""
    sweep_at = sweep_minute(hold.hold_expires_at)
    event_id = new_id("evt")
    if is_postgres(connection):
        written, sweep_job = await _write_postgres(connection, hold, event_id, event_data,
                                                   sweep_at)  # fmt: skip
    else:
        engine = session.bind
        assert isinstance(engine, AsyncEngine)
        writes = _sqlite_writes(hold, event_id, event_data, sweep_at)
        written, sweep_job = await sqlite_hold.write_at_once(engine, writes)
    if sweep_job is not None:
        mark_enqueued(session, sweep_at)
    return written


async def write_known(
    engine: AsyncEngine,
    hold: Appointment,
    event_data: dict[str, Any],
    as_read: dict[str, Any],
) -> tuple[bool, datetime | None]:
    """write_alone, only if what the request's checks read is still so (placing.still_as_read,
    its parameters `as_read`): False, with nothing written, if it is not, or if the time or
    the Idempotency-Key is taken. On PostgreSQL one statement, its own transaction; on SQLite
    the check and the three inserts in one hop to the connection's thread. Second, the
    minute of the sweep job this wrote, if it wrote one (for the caller to wake the workers:
    mark_enqueued)."""
    sweep_at = sweep_minute(hold.hold_expires_at)
    if is_postgres(engine):
        params = _postgres_params(hold, new_id("evt"), event_data, sweep_at) | as_read
        row = await pg_direct.fetch_one(engine, _KNOWN_WRITE, params)
        written, sweep_job = row["held"] == 1, row["sweep_job"]
    else:
        check = sqlite_hold.prepared(_KNOWN_CHECK, tuple(as_read))
        writes = _sqlite_writes(hold, new_id("evt"), event_data, sweep_at)
        written, sweep_job = await sqlite_hold.write_at_once(engine, writes, (check, as_read))
    return written, None if sweep_job is None else sweep_at


def _hold_row(hold: Appointment) -> dict[str, Any]:
    return {
        "tenant_id": hold.tenant_id,
        "id": hold.id,
        "provider_id": hold.provider_id,
        "client_id": hold.client_id,
        "slot_start": hold.slot_start,
        "slot_end": hold.slot_end,
        "visit_type_id": hold.visit_type_id,
        "occupied_start": hold.occupied_start,
        "occupied_end": hold.occupied_end,
        "status": "held",
        "hold_expires_at": hold.hold_expires_at,
        "idempotency_key": hold.idempotency_key,
        "patient_phone": hold.patient_phone,
        "created_at": hold.created_at,
        "updated_at": hold.created_at,
    }


# The hold, its event and its sweep job in one round trip: the hold is inserted from a SELECT
# of its values (with `condition`, only if that holds), and the event and the job are
# selected from the hold's RETURNING: no hold, no event, no job.
def _postgres_write(condition: ColumnElement[bool] | None) -> Select[Any]:
    appointments, events, jobs = _APPOINTMENTS, _EVENTS, _JOBS
    columns = [appointments.c[name] for name in _HOLD_COLUMNS]
    values = select(*(_value(column) for column in columns))
    if condition is not None:
        values = values.where(condition)
    hold = (
        postgresql.insert(appointments)
        .from_select(columns, values)
        .on_conflict_do_nothing()
        .returning(appointments.c.tenant_id, appointments.c.id, appointments.c.created_at)
        .cte("hold")
    )
    event = insert(events).from_select(
        ["id", "tenant_id", "type", "occurred_at", "subject_kind", "subject_id", "data", "actor"],
        select(_param(events.c.id, "event_id"), hold.c.tenant_id, literal(HELD),
               hold.c.created_at, literal("appointment"), hold.c.id,
               _param(events.c.data, "event_data"), _param(events.c.actor, "actor")),
    ).cte("event")  # fmt: skip
    sweep_columns = ["tenant_id", "kind", "payload", "run_at", "priority", "status", "attempts",
                     "max_attempts", "dedupe_key", "created_at", "updated_at"]  # fmt: skip
    sweep_values = select(
        hold.c.tenant_id, literal(EXPIRE_HOLDS), _param(jobs.c.payload, "sweep_payload"),
        _param(jobs.c.run_at, "sweep_at"), literal(0), literal("queued"), literal(0),
        _param(jobs.c.max_attempts), _param(jobs.c.dedupe_key, "sweep_key"),
        hold.c.created_at, hold.c.created_at,
    )  # fmt: skip
    sweep = (
        postgresql.insert(jobs)
        .from_select(sweep_columns, sweep_values)
        .on_conflict_do_nothing(index_elements=[jobs.c.dedupe_key], index_where=DEDUPE_PREDICATE)
        .returning(jobs.c.id)
        .cte("sweep")
    )
    held = select(func.count()).select_from(hold).scalar_subquery().label("held")
    sweep_job = select(sweep.c.id).scalar_subquery().label("sweep_job")
    return select(held, sweep_job).add_cte(event)


_HOLD_COLUMNS = ("tenant_id", "id", "provider_id", "client_id", "slot_start", "slot_end",
                 "visit_type_id", "occupied_start", "occupied_end", "status", "hold_expires_at",
                 "idempotency_key", "patient_phone", "created_at", "updated_at")  # fmt: skip


def _value(column: Column[Any]) -> ColumnElement[Any]:
    """The hold's value for `column` (created and updated now; status held)."""
    if column.name == "status":
        return literal("held")
    return _param(column, "now" if column.name in ("created_at", "updated_at") else None)


def _param(column: Column[Any], name: str | None = None) -> BindParameter[Any]:
    """A parameter with `column`'s type (its name the column's unless named)."""
    return bindparam(name or column.name, type_=column.type)


_POSTGRES_WRITE = _postgres_write(None)
_KNOWN_WRITE = _postgres_write(placing.still_as_read())
_KNOWN_CHECK = select(case((placing.still_as_read(), 1), else_=0))


async def _write_postgres(
    session: AsyncSession | AsyncConnection,
    hold: Appointment,
    event_id: str,
    event_data: dict[str, Any],
    sweep_at: datetime,
) -> tuple[bool, int | None]:
    params = _postgres_params(hold, event_id, event_data, sweep_at)
    written = (await session.execute(_POSTGRES_WRITE, params)).one()
    return written.held == 1, written.sweep_job


def _postgres_params(
    hold: Appointment, event_id: str, event_data: dict[str, Any], sweep_at: datetime
) -> dict[str, Any]:
    row = _hold_row(hold)
    del row["status"], row["updated_at"]
    row["now"] = row.pop("created_at")
    return {
        **row,
        "event_id": event_id,
        "event_data": event_data,
        "actor": current_actor(),
        "sweep_payload": _sweep_payload(sweep_at),
        "sweep_at": sweep_at,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "sweep_key": sweep_key(hold.tenant_id, hold.hold_expires_at),
    }


# SQLite's three inserts, built once: a statement built per request (`.values(row)`) costs
# SQLAlchemy more than SQLite takes to run it, and it runs under the write lock.
_SQLITE_HOLD = sqlite.insert(_APPOINTMENTS).on_conflict_do_nothing().returning(_APPOINTMENTS.c.id)
_SQLITE_EVENT = insert(_EVENTS)
_SQLITE_SWEEP = (
    sqlite.insert(_JOBS)
    .on_conflict_do_nothing(index_elements=[_JOBS.c.dedupe_key], index_where=DEDUPE_PREDICATE)
    .returning(_JOBS.c.id)
)


async def _write_sqlite(
    session: AsyncSession,
    hold: Appointment,
    event_id: str,
    event_data: dict[str, Any],
    sweep_at: datetime,
) -> tuple[bool, int | None]:
    connection = await session.connection()
    (_, row), (_, event), (_, sweep) = _sqlite_writes(hold, event_id, event_data, sweep_at)
    try:
        inserted = (await connection.execute(_SQLITE_HOLD, row)).first()
    except IntegrityError:  # the no-overlap trigger: only this statement is undone
        return False, None
    if inserted is None:  # the idempotency key is taken
        return False, None
    await connection.execute(_SQLITE_EVENT, event)
    job_id: int | None = (await connection.execute(_SQLITE_SWEEP, sweep)).scalar()
    return True, job_id


def _sqlite_writes(
    hold: Appointment, event_id: str, event_data: dict[str, Any], sweep_at: datetime
) -> sqlite_hold.Insert3:
    """The hold's three inserts on SQLite, each with its values."""
    row, now = _hold_row(hold), hold.created_at
    event = {"id": event_id, "tenant_id": hold.tenant_id, "type": HELD, "occurred_at": now,
             "subject_kind": "appointment", "subject_id": hold.id, "data": event_data,
             "actor": current_actor()}  # fmt: skip
    sweep = {"tenant_id": hold.tenant_id, "kind": EXPIRE_HOLDS,
             "payload": _sweep_payload(sweep_at), "run_at": sweep_at, "priority": 0,
             "status": "queued", "attempts": 0, "max_attempts": DEFAULT_MAX_ATTEMPTS,
             "dedupe_key": sweep_key(hold.tenant_id, hold.hold_expires_at),
             "created_at": now, "updated_at": now}  # fmt: skip
    return sqlite_hold.Insert3(
        (sqlite_hold.prepared(_SQLITE_HOLD, tuple(row)), row),
        (sqlite_hold.prepared(_SQLITE_EVENT, tuple(event)), event),
        (sqlite_hold.prepared(_SQLITE_SWEEP, tuple(sweep)), sweep),
    )


async def ensure_sweep(session: AsyncSession, tenant_id: str, deadline: datetime) -> None:
    """The sweep job for `deadline`'s minute, if there is none yet (a hold whose deadline
    moved: a renewed hold after a reschedule)."""
    sweep_at = sweep_minute(deadline)
    await enqueue(
        session,
        EXPIRE_HOLDS,
        _sweep_payload(sweep_at),
        run_at=sweep_at,
        tenant_id=tenant_id,
        dedupe_key=_sweep_dedupe(sweep_at),
    )


def _sweep_payload(sweep_at: datetime) -> dict[str, Any]:
    return {"due": isoformat_z(sweep_at)}


def _sweep_dedupe(sweep_at: datetime) -> str:
    """The sweep job's dedupe key (before its tenant scope): one live job per minute."""
    return f"{EXPIRE_HOLDS}:{int(sweep_at.timestamp()) // 60}"
