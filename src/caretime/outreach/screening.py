"""Screening items before they are planned: an item whose number opted out of calls is
rejected with when and how; one whose number already has a live call for the same purpose
with that call's id and time.

For duplicates this is the friendly check; the guarantee is the partial unique index on live
calls, which refuses a duplicate written by a concurrent request (see `duplicate_reason`).
Screening first also keeps rejected items off the capacity ledger of the batch.

A large batch on PostgreSQL is screened a chunk at a time (`screening`): the first chunk
before anything is planned, each later one on a second pooled connection (taken before the
tenant's capacity is locked, given back once the last chunk is screened) while the chunk
before it is written, so that the database starts writing after one chunk's screening
instead of the whole batch's. That connection reads in autocommit: it sees what other
transactions committed (a concurrent batch's calls, an opt-out just received), never this
batch's own uncommitted calls, so a number repeated within the batch is still the planner's
"same as item N", as when the whole batch is screened before its first write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

from asyncpg import InterfaceError, PostgresError  # type: ignore[import-untyped]
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool

from caretime.clock import isoformat_z
from caretime.messaging.consent import OptOutState, opt_outs
from caretime.outreach.intake import Intake, ParsedItem
from caretime.outreach.models import contact_id_for
from caretime.outreach.pipeline import ScreenSpan
from caretime.outreach.repository import CallRepository, LiveCall
from caretime.policy import Rejected, UndialableNumber
from caretime.policy.phones import default_phone_book

DUPLICATE = "already_scheduled"
OPTED_OUT = "opted_out"


@dataclass(frozen=True)
class Screen:
    """What is known about a batch's numbers: their opt-outs of calls and live calls."""

    opted_out: dict[str, OptOutState]
    live: dict[tuple[str, str], LiveCall]
    # The contact ids among the numbers' that have a contact row (PostgreSQL; None elsewhere).
    known: set[str] | None = None

    def verdict(self, item: Intake, number: str | None) -> Intake:
        """The item, or why it must not be scheduled."""
        if number is None or not isinstance(item, ParsedItem):
            return item
        opt_out = self.opted_out.get(number)
        if opt_out is not None:
            return Rejected(OPTED_OUT, opted_out_reason(opt_out))
        found = None if item.plan.allow_duplicate else self.live.get((number, item.plan.purpose))
        return item if found is None else duplicate_of(found, item.plan.purpose)


class Keys(NamedTuple):
    """What a screening looks up: each item's number in E.164 (None: not a dialable item's),
    and the contact id of each distinct number (contact id → number)."""

    numbers: list[str | None]
    contacts: dict[str, str]


def keys_of(tenant_id: str, items: Sequence[Intake]) -> Keys:
    """Pure CPU work (a number's E.164 form, a contact id's SHA-256), safe in a thread."""
    numbers = [_e164(item) for item in items]
    wanted = sorted({number for number in numbers if number is not None})
    return Keys(numbers, {contact_id_for(tenant_id, number): number for number in wanted})


async def screen(
    session: AsyncSession,
    tenant_id: str,
    items: list[Intake],
    keys: Keys | None = None,
    known: set[str] | None = None,
) -> list[Intake]:
    """The items, with each whose number opted out of calls or already has a live call for
    the same purpose replaced by its rejection (`keys`: the items' own, if known already).
    The contact ids found to have a row are added to `known`, if given (see
    `ContactRepository.insert_missing`)."""
    numbers, contacts = keys or keys_of(tenant_id, items)
    if not contacts:
        return items
    found = await _looked_up(session, tenant_id, contacts)
    if known is not None and found.known is not None:
        known |= found.known
    if not (found.opted_out or found.live):
        return items
    return [found.verdict(item, number) for item, number in zip(items, numbers, strict=True)]


@asynccontextmanager
async def reader_beside(
    session: AsyncSession, *, wanted: bool
) -> AsyncIterator[AsyncSession | None]:
    """If `wanted`, a second connection to screen a batch's later chunks on (`screening`),
    given back at the end at the latest; None when there is none to spare (see
    `_spare_reader`). Taken before the request locks its tenant's capacity, so that a
    connection opened for it is not opened under that lock."""
    reader = await _spare_reader(session) if wanted else None
    try:
        yield reader
    finally:
        if reader is not None:
            await reader.close()


async def screening(
    session: AsyncSession,
    tenant_id: str,
    items: list[Intake],
    *,
    first: int | None,
    reader: AsyncSession | None,
    known: set[str] | None = None,
) -> ScreenSpan | None:
    """Screen `items` in place: all of them now (None returned, the reader given back), or,
    given the size of a first chunk and a reader, that chunk now and each later span by the
    function returned, on the reader. The contact ids found are added to `known`."""
    if reader is None or first is None or first >= len(items):
        if reader is not None:
            await reader.close()  # not needed: back to the pool at once
        items[:] = await screen(session, tenant_id, items, known=known)
        return None
    items[:first] = await screen(session, tenant_id, items[:first], known=known)
    return ScreenAhead(reader, tenant_id, items, known)


class ScreenAhead:
    """Screens a batch's later spans, in order, on a connection of their own, which goes back
    to the pool once the batch's last span is screened: the writes after it need it no more."""

    def __init__(
        self,
        reader: AsyncSession,
        tenant_id: str,
        items: list[Intake],
        known: set[str] | None = None,
    ) -> None:
        self.reader, self.tenant_id, self.items, self.known = reader, tenant_id, items, known

    async def __call__(self, start: int, end: int) -> None:
        try:
            # The numbers' forms and contact ids off the loop, which meanwhile serves the
            # statements writing the chunk before.
            span = self.items[start:end]
            keys = await asyncio.to_thread(keys_of, self.tenant_id, span)
            self.items[start:end] = await screen(
                self.reader, self.tenant_id, span, keys, self.known
            )
        finally:
            if end >= len(self.items):
                await self.reader.close()


# What taking a pooled connection can raise when the database or the network refuses it
# (asyncpg's own errors reach us unwrapped when a new connection is opened).
_NOT_CONNECTED = (DBAPIError, PoolTimeout, OSError, TimeoutError, PostgresError, InterfaceError)


async def _spare_reader(session: AsyncSession) -> AsyncSession | None:
    """A session on a second connection of the request's PostgreSQL pool, each statement its
    own transaction: an idle one, or one opened while the pool holds fewer than its size.
    None on SQLite (a second connection would wait for the writer's lock), when the pool is
    at its size (its overflow is left to requests holding no connection, and past it a
    checkout waits: a request must never wait for a second connection while it holds one,
    or a pool full of such requests would wait for itself), or when taking it fails."""
    engine = session.bind
    if not (isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql"):
        return None
    pool = engine.pool
    if not (isinstance(pool, QueuePool) and (pool.checkedin() or pool.checkedout() < pool.size())):
        return None
    reader = AsyncSession(engine.execution_options(isolation_level="AUTOCOMMIT"))
    try:
        await reader.connection()  # taken now, while the pool has it to spare
    except _NOT_CONNECTED:
        # A connection refused (the database at max_connections, the network), or an idle
        # one found dead and its replacement refused: the batch is then screened whole
        # before its first write, as on SQLite.
        await reader.close()
        return None
    return reader


async def look_up(session: AsyncSession, tenant_id: str, numbers: Sequence[str]) -> Screen:
    by_contact = {contact_id_for(tenant_id, number): number for number in numbers}
    return await _looked_up(session, tenant_id, by_contact)


async def _looked_up(session: AsyncSession, tenant_id: str, by_contact: dict[str, str]) -> Screen:
    """The opt-outs and live calls of these numbers (contact id → number)."""
    opted_out = await opt_outs(session, tenant_id, list(by_contact.values()), "voice")
    known, live = await CallRepository(session, tenant_id).known_and_live(by_contact)
    return Screen(opted_out, live, known)


def opted_out_reason(state: OptOutState) -> str:
    return f"the recipient opted out of calls on {isoformat_z(state.changed_at)} ({state.how()})"


def duplicate_of(live: LiveCall | None, purpose: str) -> Rejected:
    return Rejected(DUPLICATE, duplicate_reason(live, purpose))


def duplicate_reason(live: LiveCall | None, purpose: str) -> str:
    """Why a call is refused as a duplicate, naming the live call when it is known."""
    for_purpose = f' for "{purpose}"' if purpose else ""
    if live is None:
        existing = "a live call"
    elif live.status == "scheduled":
        existing = f"a scheduled call {live.id} at {isoformat_z(live.scheduled_at)}"
    else:
        existing = f"a call in progress {live.id}"
    return (
        f"this number already has {existing}{for_purpose} "
        '(send "allow_duplicate": true to add another)'
    )


def _e164(item: Intake) -> str | None:
    return e164_of(item.plan.phone) if isinstance(item, ParsedItem) else None


def e164_of(phone: str) -> str | None:
    """The number in E.164, or None if it is not dialable (the planner says why)."""
    try:
        found = default_phone_book.lookup(phone)
        return found[0] if found is not None else default_phone_book.parse(phone).e164
    except UndialableNumber:
        return None


async def live_calls(
    session: AsyncSession, tenant_id: str, numbers: Sequence[str]
) -> dict[tuple[str, str], LiveCall]:
    return await CallRepository(session, tenant_id).live_for(sorted(set(numbers)))
