"""Screening items before they are planned: an item whose number opted out of calls is
rejected with when and how; one whose number already has a live call for the same purpose
with that call's id and time.

For duplicates this is the friendly check; the guarantee is the partial unique index on live
calls, which refuses a duplicate written by a concurrent request (see `duplicate_reason`).
Screening first also keeps rejected items off the capacity ledger of the batch.

A large batch on PostgreSQL is screened a chunk at a time (`screening`): the first chunk
before anything is planned, each later one on a second pooled connection while the chunk
before it is written, so that the database starts writing after one chunk's screening instead
of the whole batch's. That connection reads in autocommit: it sees what other transactions
committed (a concurrent batch's calls, an opt-out just received), never this batch's own
uncommitted calls, so a number repeated within the batch is still the planner's "same as item
N", as when the whole batch is screened before its first write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

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
    session: AsyncSession, tenant_id: str, items: list[Intake], keys: Keys | None = None
) -> list[Intake]:
    """The items, with each whose number opted out of calls or already has a live call for
    the same purpose replaced by its rejection (`keys`: the items' own, if known already)."""
    numbers, contacts = keys or keys_of(tenant_id, items)
    if not contacts:
        return items
    opted_out = await opt_outs(session, tenant_id, list(contacts.values()), "voice")
    live = await CallRepository(session, tenant_id).live_by_contact(contacts)
    if not (opted_out or live):
        return items
    found = Screen(opted_out, live)
    return [found.verdict(item, number) for item, number in zip(items, numbers, strict=True)]


@asynccontextmanager
async def screening(
    session: AsyncSession, tenant_id: str, items: list[Intake], *, first: int | None
) -> AsyncIterator[ScreenSpan | None]:
    """Screen `items` in place: all of them now, or, given the size of a first chunk, that
    chunk now and each later span by the function yielded, its reads on a second connection
    (None when all were screened now). The later spans are screened so only on PostgreSQL,
    when the request's pool has a connection to spare without waiting: on SQLite a second
    connection would wait for the writer's lock, and a request must never wait for a second
    connection while it holds one (a pool full of such requests would wait for itself)."""
    async with _reader_beside(session) if first is not None else _nothing() as reader:
        if reader is None or first is None or first >= len(items):
            items[:] = await screen(session, tenant_id, items)
            yield None
            return
        items[:first] = await screen(session, tenant_id, items[:first])

        async def screen_later(start: int, end: int) -> None:
            # The numbers' forms and contact ids off the loop, which meanwhile serves the
            # statements writing the chunk before.
            span = items[start:end]
            keys = await asyncio.to_thread(keys_of, tenant_id, span)
            items[start:end] = await screen(reader, tenant_id, span, keys)

        yield screen_later


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield None


@asynccontextmanager
async def _reader_beside(session: AsyncSession) -> AsyncIterator[AsyncSession | None]:
    """A session on a second connection of the request's PostgreSQL pool, each statement its
    own transaction; None on SQLite, or when taking it could mean waiting for the pool."""
    engine = session.bind
    if not (isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql"):
        yield None
        return
    pool = engine.pool
    # Only within the pool's own size: its overflow is for requests holding no connection
    # yet, and past the overflow a checkout waits.
    if not isinstance(pool, QueuePool) or pool.checkedout() >= pool.size():
        yield None
        return
    async with AsyncSession(engine.execution_options(isolation_level="AUTOCOMMIT")) as reader:
        await reader.connection()  # taken now, while the pool has it to spare
        yield reader


async def look_up(session: AsyncSession, tenant_id: str, numbers: Sequence[str]) -> Screen:
    opted_out = await opt_outs(session, tenant_id, numbers, "voice")
    return Screen(opted_out, await CallRepository(session, tenant_id).live_for(numbers))


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
