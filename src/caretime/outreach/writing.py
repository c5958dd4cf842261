"""Writing planned calls: contacts, calls and their dispatch jobs in bulk (one job per tenant
and due minute, not per call), and the capacity ledger they are planned against. The caller
owns the transaction."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from caretime import bulk_text
from caretime.bulk import Documents, PreparedInsert
from caretime.db import is_postgres, serialise_on_all
from caretime.dispatch.queue import NewJob, enqueue_or_advance
from caretime.events import PreparedEvents, current_actor, emit_prepared
from caretime.outreach.content import CallContent
from caretime.outreach.events import calls_scheduled, prepared_calls_scheduled, scheduled_data
from caretime.outreach.models import PENDING, contact_id_for
from caretime.outreach.repository import (
    CallRepository,
    ContactRepository,
    lock_tenant,
    plain_calls_insert,
)
from caretime.policy import CapacityLedger, Scheduled
from caretime.tenancy.policy import CallingPolicy
from caretime.together import both

PLACE_MINUTE = "outreach.place_minute"
# The per-call job of earlier versions; jobs queued before an upgrade still run (tasks.py).
PLACE_CALL = "outreach.place_call"
# A write of at least this many calls (a batch's chunk) builds its calls' and events'
# statements in a worker thread while PostgreSQL writes its contacts: for 8,500 calls that
# was ~20 ms of Python between statements, PostgreSQL idle, on every batch's critical path.
AHEAD_ROWS = 1000


class NewCall(NamedTuple):
    id: str
    name: str
    planned: Scheduled
    content: CallContent
    allow_duplicate: bool = False
    # The recurring series the call is an occurrence of.
    series_id: str | None = None


def minute_of(at: datetime) -> int:
    """The epoch minute a moment falls in: calls due in one minute share one dispatch job."""
    return int(at.timestamp()) // 60


def minute_job(tenant_id: str, minute: int, at: datetime) -> NewJob:
    """The job that places a tenant's calls due in `minute`, first due at `at`."""
    return NewJob(
        kind=PLACE_MINUTE,
        payload={"minute": minute},
        run_at=at,
        tenant_id=tenant_id,
        dedupe_key=f"outreach.minute:{minute}",
    )


def minute_lock(tenant_id: str, minute: int) -> str:
    return f"outreach.minute:{tenant_id}:{minute}"


async def make_dispatchable(session: AsyncSession, tenant_id: str, due: Iterable[datetime]) -> None:
    """Calls just written (or moved) to these moments will be placed: each one's minute has
    a live job due no later than it. Under each minute's lock, so that a minute job deciding
    whether it is finished either sees these calls or ends before this enqueues afresh."""
    earliest: dict[int, datetime] = {}
    for at in set(due):  # a batch's calls share seconds: each instant once
        minute = minute_of(at)
        earliest[minute] = min(at, earliest.get(minute, at))
    if not earliest:
        return
    await serialise_on_all(session, [minute_lock(tenant_id, minute) for minute in earliest])
    await enqueue_or_advance(
        session, [minute_job(tenant_id, minute, at) for minute, at in sorted(earliest.items())]
    )


def contact_id(tenant_id: str, e164: str) -> str:
    return contact_id_for(tenant_id, e164)


async def minute_ledger(
    session: AsyncSession, tenant_id: str, calling: CallingPolicy, *, now: datetime
) -> CapacityLedger:
    """Lock the tenant's capacity and read what is already booked within the horizon."""
    await lock_tenant(session, tenant_id)
    first = int(now.timestamp()) // 60
    end = int((now + timedelta(days=calling.horizon_days)).timestamp()) // 60 + 1
    load = await CallRepository(session, tenant_id).minute_load(first, end)
    return CapacityLedger.starting_with(calling.max_calls_per_minute, load)


class CallRows(NamedTuple):
    """The rows of a write (its calls' contacts and the calls), as columns: pure data, built
    without the session, so that a large batch builds a chunk's rows in a worker thread
    while the database writes the chunk before (outreach.pipeline)."""

    calls: Sequence[NewCall]
    contacts: dict[str, Sequence[Any]]
    columns: dict[str, Sequence[Any]]


def call_rows(tenant_id: str, new_calls: Sequence[NewCall]) -> CallRows:
    contacts = [contact_id(tenant_id, call.planned.e164) for call in new_calls]
    names = [call.name for call in new_calls]
    phones = [call.planned.e164 for call in new_calls]
    zones = [call.planned.zones for call in new_calls]
    columns: dict[str, Sequence[Any]] = {
        "id": [call.id for call in new_calls], "contact_id": contacts, "name": names,
        "phone_e164": phones, "zones": zones, **_planned_columns(new_calls),
        **_content_columns(new_calls)}  # fmt: skip
    return CallRows(
        new_calls, {"id": contacts, "name": names, "phone_e164": phones, "zones": zones}, columns
    )


async def write_calls(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    new_calls: Sequence[NewCall],
    *,
    batch_id: str | None,
    now: datetime,
) -> set[str]:
    """Contacts (those not known yet), calls, their events and their minutes' dispatch jobs:
    one statement each. The one way a call comes to exist (batches, POST /calls, recurring
    occurrences). Returns the ids of the calls written: one that would be a second live call
    for its number and purpose is not (nor is its job)."""
    rows = call_rows(tenant_id, new_calls)
    written = await write_rows(session, tenant_id, calling, rows, batch_id=batch_id, now=now)
    await make_dispatchable(session, tenant_id, written_instants(rows, written))
    return written


async def write_rows(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    rows: CallRows,
    *,
    batch_id: str | None,
    now: datetime,
    known_contacts: set[str] | None = None,
) -> set[str]:
    """`write_calls` but for the dispatch jobs, which the caller then owes the calls written
    (`make_dispatchable` of their `written_instants`): a batch written in chunks enqueues its
    minutes once, at the end. `known_contacts`: the contact ids the batch's screening found
    (`ContactRepository.insert_missing`)."""
    shared = _new_call_values(calling, batch_id, now)
    ahead = await _contacts_written(session, tenant_id, rows, shared, now=now, known=known_contacts)
    written = await CallRepository(session, tenant_id).insert_new(
        rows.columns, shared, prepared=ahead.calls if ahead is not None else None
    )
    if ahead is not None and len(written) == len(rows.calls):
        await emit_prepared(session, tenant_id, ahead.events, now=now)
        return written
    kept = [call for call in rows.calls if call.id in written]
    ids = [call.id for call in kept]
    await calls_scheduled(session, tenant_id, ids, _scheduled(kept, shared), now=now)
    return written


async def _contacts_written(
    session: AsyncSession,
    tenant_id: str,
    rows: CallRows,
    shared: dict[str, Any],
    *,
    now: datetime,
    known: set[str] | None,
) -> _Ahead | None:
    """The write's contacts, and for a large write on PostgreSQL its calls' and events'
    statements, built in a worker thread meanwhile (None: built in turn later)."""
    contacts = ContactRepository(session, tenant_id)
    if len(rows.calls) < AHEAD_ROWS or not is_postgres(session):
        await contacts.insert_missing(rows.contacts, now=now, known=known)
        return None
    build = functools.partial(_Ahead.build, bulk_text.splitter(session), tenant_id, rows, shared,
                              now=now, actor=current_actor())  # fmt: skip
    _, ahead = await both(
        contacts.insert_missing(rows.contacts, now=now, known=known), asyncio.to_thread(build)
    )
    return ahead


class _Ahead(NamedTuple):
    """A write's calls (their plain INSERT) and `call.scheduled` events, as statements built
    ahead; the events hold for when every call is written (else they are built again)."""

    calls: PreparedInsert
    events: PreparedEvents

    @classmethod
    def build(
        cls,
        split: str,
        tenant_id: str,
        rows: CallRows,
        shared: dict[str, Any],
        *,
        now: datetime,
        actor: str,
    ) -> _Ahead:
        calls = plain_calls_insert(split, tenant_id, rows.columns, shared)
        ids = rows.columns["id"]
        data = _scheduled(rows.calls, shared)
        return cls(calls, prepared_calls_scheduled(split, tenant_id, ids, data, now=now,
                                                   actor=actor))  # fmt: skip


def _scheduled(calls: Sequence[NewCall], shared: dict[str, Any]) -> Documents:
    """The `call.scheduled` snapshots of these calls, written with the `shared` values."""
    return scheduled_data(
        [call.id for call in calls],
        [call.planned.at for call in calls],
        [call.planned.tz for call in calls],
        [call.series_id for call in calls],
        batch_id=shared["batch_id"],
        max_attempts=shared["max_attempts"],
    )


def written_instants(rows: CallRows, written: set[str]) -> list[datetime]:
    return [call.planned.at for call in rows.calls if call.id in written]


def _planned_columns(new_calls: Sequence[NewCall]) -> dict[str, list[Any]]:
    at = [call.planned.at for call in new_calls]
    # Calls share seconds (the planner gives whole ones, 17 to a second at 1,000 a minute):
    # each distinct instant's minute once (datetime.timestamp is the costly part).
    minutes = {instant: minute_of(instant) for instant in set(at)}
    return {
        "tz": [call.planned.tz for call in new_calls],
        "scheduled_at": at,
        "scheduled_minute": [minutes[instant] for instant in at],
        "pinned": [call.planned.pinned for call in new_calls],
    }


def _content_columns(new_calls: Sequence[NewCall]) -> dict[str, list[Any]]:
    # Usually the same in every row (no content): bulk.insert_rows then sends each once.
    return {
        "purpose": [call.content.purpose for call in new_calls],
        "allow_duplicate": [call.allow_duplicate for call in new_calls],
        "script": [call.content.script for call in new_calls],
        "variables": [call.content.variables for call in new_calls],
        "series_id": [call.series_id for call in new_calls],
    }


def _new_call_values(calling: CallingPolicy, batch_id: str | None, now: datetime) -> dict[str, Any]:
    """What every call of one write shares."""
    return {
        "batch_id": batch_id,
        "status": PENDING,
        "version": 1,
        "attempts": 0,
        "max_attempts": calling.max_attempts,
        "retry_delay_seconds": int(calling.retry_delay.total_seconds()),
        "outcome": None,
        "created_at": now,
        "updated_at": now,
    }
