"""A new hold in as few statements as the database allows (docs/booking.md, "Reserving").

Reading: one SELECT for the provider, the visit type, the availability rules around the slot
and the webhook endpoints that want `appointment.held`: in the caller's transaction
(`read_place`, the endpoints locked FOR KEY SHARE, as `emit` locks them), or for an API
request on a reader connection before any write (`read_for_request`, which also reads the
request's key, the tenant's policy version and whether its Idempotency-Key is taken).

Writing: the hold, its `appointment.held` event and, once a minute per tenant, the job that
sweeps that minute's expired holds (`booking.expire_holds`). On PostgreSQL it is one
statement: the hold is inserted with ON CONFLICT DO NOTHING, so the exclusion constraint
decides without an error, a SAVEPOINT or an advisory lock (a speculative insert that meets an
uncommitted overlapping one waits for it, then does nothing if it committed; it never waits
while holding a conflicting row, so overlapping inserts cannot deadlock), and the event and
the job are inserted from the hold's RETURNING, so they exist exactly when the hold does. On
SQLite, three statements under the single writer: the trigger refuses an overlap by aborting
its statement alone (SQLite rolls back a failed statement, not the transaction). A hold that
is all its request writes is its own transaction (`write_alone`): on PostgreSQL that one
statement in autocommit, on SQLite the three in one hop (sqlite_hold).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Date,
    Row,
    Select,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from caretime.booking import sqlite_hold
from caretime.booking.availability import Rule
from caretime.booking.grid import VisitShape
from caretime.booking.models import Appointment, AvailabilityRule, Provider, VisitType
from caretime.clock import isoformat_z
from caretime.db import JSONDocument, UTCDateTime, is_postgres
from caretime.dispatch import enqueue
from caretime.dispatch.models import DEDUPE_PREDICATE, Job
from caretime.dispatch.queue import DEFAULT_MAX_ATTEMPTS, scoped_dedupe_key
from caretime.dispatch.wakeup import mark_enqueued
from caretime.events.actor import current_actor
from caretime.events.models import Event
from caretime.events.webhooks.models import WebhookEndpoint
from caretime.events.webhooks.outbox import deliver_events
from caretime.events.webhooks.patterns import matches
from caretime.ids import new_id
from caretime.tenancy.models import ApiKey, Tenant

HELD = "appointment.held"
EXPIRE_HOLDS = "booking.expire_holds"


@dataclass(frozen=True)
class Place:
    """What a reservation reads about where it goes, in one statement."""

    provider: Provider  # transient: not in the session
    shape: VisitShape | None  # None: the provider does not offer the visit type asked for
    rules: list[Rule]
    endpoints: list[str]  # webhook endpoints that want appointment.held


async def read_place(
    session: AsyncSession,
    tenant_id: str,
    provider_id: str,
    slot_start: datetime,
    visit_type: str | None,
    default: VisitShape,
) -> Place | None:
    """The provider (None if there is none), the visit's shape, and every availability rule
    that may apply within a day of the slot's local date (two UTC days either side cover any
    zone), in the caller's transaction (the endpoints locked until it ends)."""
    params = _place_params(tenant_id, provider_id, slot_start, visit_type)
    statement = _place_statement(is_postgres(session), visit_type is not None)
    rows = (await session.execute(statement, params)).all()
    return _place(rows, tenant_id, provider_id, visit_type, default)


@dataclass(frozen=True)
class Reading:
    """What a reservation request reads before it writes, in one statement on a reader
    connection (no write transaction, so on SQLite not under the write lock): the place,
    and about the caller the key's state and the tenant's policy version (so the request
    needs no statement of its own for them), and whether its Idempotency-Key is taken."""

    key: str  # the request's key as read now: "valid", "revoked" or "unknown" (deleted)
    policy_version: int
    replayed: bool  # a reservation with the request's Idempotency-Key exists
    rows: Sequence[Row[Any]]

    def place(
        self, tenant_id: str, provider_id: str, visit_type: str | None, default: VisitShape
    ) -> Place | None:
        rows = self.rows if self.rows[0].name is not None else []  # no provider: no place
        return _place(rows, tenant_id, provider_id, visit_type, default)


async def read_for_request(
    connection: AsyncConnection,
    tenant_id: str,
    key_id: str,
    provider_id: str,
    slot_start: datetime,
    visit_type: str | None,
    idempotency_key: str | None,
) -> Reading:
    """Read everything a reservation request checks before its write, in one statement
    (endpoints not locked: a request that delivers to one locks them in its transaction)."""
    params = _place_params(tenant_id, provider_id, slot_start, visit_type)
    params |= {"key_id": key_id, "idempotency_key": idempotency_key}
    postgres = connection.dialect.name == "postgresql"
    statement = _request_statement(postgres, visit_type is not None, idempotency_key is not None)
    rows = (await connection.execute(statement, params)).all()
    if not rows:  # the key is gone
        return Reading("unknown", 0, False, [])
    head = rows[0]
    key = "valid" if head.revoked_at is None else "revoked"
    return Reading(key, head.policy_version, bool(head.replayed), rows)


def _place_params(
    tenant_id: str, provider_id: str, slot_start: datetime, visit_type: str | None
) -> dict[str, Any]:
    day = slot_start.astimezone(UTC).date()
    return {
        "tenant_id": tenant_id,
        "provider_id": provider_id,
        "first": day - timedelta(days=2),
        "last": day + timedelta(days=2),
        "visit_type": visit_type,
    }


def _place(
    rows: Sequence[Row[Any]],
    tenant_id: str,
    provider_id: str,
    visit_type: str | None,
    default: VisitShape,
) -> Place | None:
    if not rows:
        return None
    head = rows[0]
    provider = Provider(
        tenant_id=tenant_id,
        id=provider_id,
        name=head.name,
        tz=head.tz,
        max_per_day=head.max_per_day,
    )
    shape: VisitShape | None = default
    if visit_type is not None:
        shape = None if head.minutes is None else VisitShape(head.minutes, head.before, head.after)
    rules = [
        Rule(r.kind, r.start_minute, r.end_minute, r.day, r.weekdays, r.valid_from, r.valid_until)
        for r in rows
        if r.kind is not None
    ]
    wanted = [id_ for id_, patterns in head.endpoints or [] if matches(patterns, HELD)]
    return Place(provider, shape, rules, wanted)


@functools.cache
def _place_statement(postgres: bool, with_visit_type: bool) -> Select[Any]:
    """read_place's SELECT, built once per kind (its parameters bound at execution): the
    provider joined with its rules near the slot (one row per rule) and, when asked, the
    visit type; the endpoints a scalar subquery, locked."""
    statement = select(*_PLACE_COLUMNS, _endpoints(postgres, lock=True)).select_from(Provider)
    return _with_rules_and_visit_type(statement, with_visit_type).where(
        Provider.tenant_id == bindparam("tenant_id", type_=String()),
        Provider.id == bindparam("provider_id", type_=String()),
    )


@functools.cache
def _request_statement(postgres: bool, with_visit_type: bool, with_key: bool) -> Select[Any]:
    """read_for_request's SELECT: the caller's key and tenant (one row, or none if the key is
    gone), the provider if there is one, then as read_place's."""
    replayed: Any = literal(False)
    if with_key:
        replayed = exists().where(
            Appointment.tenant_id == bindparam("tenant_id", type_=String()),
            Appointment.idempotency_key == bindparam("idempotency_key", type_=String()),
        )
    statement = (
        select(
            ApiKey.revoked_at,
            Tenant.policy_version,
            replayed.label("replayed"),
            *_PLACE_COLUMNS,
            _endpoints(postgres, lock=False),
        )
        .select_from(ApiKey)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .outerjoin(
            Provider,
            and_(
                Provider.tenant_id == Tenant.id,
                Provider.id == bindparam("provider_id", type_=String()),
            ),
        )
    )
    return _with_rules_and_visit_type(statement, with_visit_type).where(
        ApiKey.id == bindparam("key_id", type_=String()),
        ApiKey.tenant_id == bindparam("tenant_id", type_=String()),
    )


_RULE = AvailabilityRule
_PLACE_COLUMNS: tuple[Any, ...] = (
    Provider.name,
    Provider.tz,
    Provider.max_per_day,
    _RULE.kind,
    _RULE.start_minute,
    _RULE.end_minute,
    _RULE.day,
    _RULE.weekdays,
    _RULE.valid_from,
    _RULE.valid_until,
)


def _with_rules_and_visit_type(statement: Select[Any], with_visit_type: bool) -> Select[Any]:
    """`statement` (from the provider) outer-joined with its rules near the slot and, when
    asked, the visit type's shape."""
    rule = _RULE
    first, last = bindparam("first", type_=Date()), bindparam("last", type_=Date())
    rules_near = and_(
        rule.tenant_id == Provider.tenant_id,
        rule.provider_id == Provider.id,
        or_(
            and_(rule.kind != "weekly", rule.day.between(first, last)),
            and_(
                rule.kind == "weekly",
                or_(rule.valid_until.is_(None), rule.valid_until >= first),
                or_(rule.valid_from.is_(None), rule.valid_from <= last),
            ),
        ),
    )
    statement = statement.outerjoin(rule, rules_near)
    if not with_visit_type:
        return statement
    return statement.add_columns(
        VisitType.minutes,
        VisitType.buffer_before.label("before"),
        VisitType.buffer_after.label("after"),
    ).outerjoin(
        VisitType,
        and_(
            VisitType.tenant_id == Provider.tenant_id,
            VisitType.provider_id == Provider.id,
            VisitType.id == bindparam("visit_type", type_=String()),
        ),
    )


def _endpoints(postgres: bool, *, lock: bool) -> Any:
    """The tenant's enabled webhook endpoints as JSON [[id, patterns]...]; with `lock`,
    locked against their pump's last check until this transaction ends (see
    events.webhooks.outbox)."""
    endpoint = WebhookEndpoint
    enabled = (
        select(endpoint.id, endpoint.event_types)
        .where(
            endpoint.tenant_id == bindparam("tenant_id", type_=String()),
            endpoint.enabled.is_(True),
        )
        .order_by(endpoint.id)
    )
    if postgres:
        if lock:
            enabled = enabled.with_for_update(read=True, key_share=True)
        locked = enabled.subquery()
        pairs = func.json_agg(func.json_build_array(locked.c.id, locked.c.event_types))
    else:
        locked = enabled.subquery()
        pairs = func.json_group_array(func.json_array(locked.c.id, func.json(locked.c.event_types)))
    return type_coerce(select(pairs).select_from(locked).scalar_subquery(), JSON).label("endpoints")


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
    if connection.dialect.name == "postgresql":
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


_INSTANTS = ("slot_start", "slot_end", "occupied_start", "occupied_end", "hold_expires_at", "now")
# The hold, its event and its sweep job in one round trip. The event and the job are
# selected from the hold's RETURNING: no hold, no event, no job.
_POSTGRES_WRITE = text(
    """
WITH hold AS (
    INSERT INTO appointments (tenant_id, id, provider_id, client_id, slot_start, slot_end,
        visit_type_id, occupied_start, occupied_end, status, hold_expires_at,
        idempotency_key, patient_phone, created_at, updated_at)
    VALUES (:tenant_id, :id, :provider_id, :client_id, :slot_start, :slot_end,
        :visit_type_id, :occupied_start, :occupied_end, 'held', :hold_expires_at,
        :idempotency_key, :patient_phone, :now, :now)
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, id, created_at
), event AS (
    INSERT INTO events (id, tenant_id, type, occurred_at, subject_kind, subject_id, data, actor)
    SELECT CAST(:event_id AS VARCHAR), hold.tenant_id, 'appointment.held', hold.created_at,
        'appointment', hold.id, CAST(:event_data AS JSONB), CAST(:actor AS VARCHAR)
    FROM hold
), sweep AS (
    INSERT INTO jobs (tenant_id, kind, payload, run_at, priority, status, attempts,
        max_attempts, dedupe_key, created_at, updated_at)
    SELECT hold.tenant_id, 'booking.expire_holds', CAST(:sweep_payload AS JSONB),
        CAST(:sweep_at AS TIMESTAMP WITH TIME ZONE), 0, 'queued', 0, :max_attempts,
        CAST(:sweep_key AS VARCHAR), hold.created_at, hold.created_at
    FROM hold
    ON CONFLICT (dedupe_key)
        WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM hold) AS held, (SELECT id FROM sweep) AS sweep_job
"""
).bindparams(
    *(bindparam(name, type_=UTCDateTime()) for name in (*_INSTANTS, "sweep_at")),
    bindparam("event_data", type_=JSONDocument),
    bindparam("sweep_payload", type_=JSONDocument),
)


async def _write_postgres(
    session: AsyncSession | AsyncConnection,
    hold: Appointment,
    event_id: str,
    event_data: dict[str, Any],
    sweep_at: datetime,
) -> tuple[bool, int | None]:
    row = _hold_row(hold)
    del row["status"], row["updated_at"]
    row["now"] = row.pop("created_at")
    params = {
        **row,
        "event_id": event_id,
        "event_data": event_data,
        "actor": current_actor(),
        "sweep_payload": _sweep_payload(sweep_at),
        "sweep_at": sweep_at,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "sweep_key": sweep_key(hold.tenant_id, hold.hold_expires_at),
    }
    written = (await session.execute(_POSTGRES_WRITE, params)).one()
    return written.held == 1, written.sweep_job


# SQLite's three inserts, built once: a statement built per request (`.values(row)`) costs
# SQLAlchemy more than SQLite takes to run it, and it runs under the write lock.
_APPOINTMENTS = cast(Table, Appointment.__table__)
_EVENTS = cast(Table, Event.__table__)
_JOBS = cast(Table, Job.__table__)
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
