"""Planning and writing a batch's calls in chunks, the next chunk planned and its rows built in
a worker thread while the database writes the one before: Python and PostgreSQL then work at
once, where they used to take turns (docs/outreach.md, "The bulk path of POST /schedule").

Every chunk is written in the caller's transaction, so a batch is still all or nothing; the
capacity ledger, the screening and the live-call index are the same for a chunk as for a whole
batch. On PostgreSQL a chunk after the first may be screened then too, its reads on a second
connection while the chunk before is written (outreach.screening.screening). Chunks are
planned by one planner in item order, which gives the plan of the whole batch when no item is
pinned to a time and the strategy is `earliest` (pinned items are placed before floating ones,
and `spread` spreads a group over its windows): otherwise the whole batch is planned first and
only the writing goes in chunks.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.ids import new_ids
from caretime.outreach.intake import Intake, ParsedItem, plan_parsed
from caretime.outreach.writing import (
    CallRows,
    NewCall,
    call_rows,
    make_dispatchable,
    write_rows,
    written_instants,
)
from caretime.policy import Outcome, Planner, Scheduled
from caretime.tenancy.policy import CallingPolicy
from caretime.together import both

P = TypeVar("P")
R = TypeVar("R")
# Items planned before the database is given its first chunk (it waits for these alone). The
# first chunk's write (~80 ms of the database's time for 1,500 calls) covers the planning of
# the next 10,000 items in the worker thread (~40 ms), so two chunks make a 10,000-item batch:
# more, smaller chunks overlapped no more work and cost the database a few statements more.
FIRST_CHUNK = 1500
# Items per chunk after the first (a batch may hold 100,000).
CHUNK = 10_000
# Larger batches are planned in a worker thread, so that the event loop keeps answering
# other requests (/health among them) meanwhile; a smaller one is planned on the loop.
INLINE_ITEMS = 1000


class Span(NamedTuple):
    start: int
    end: int


class Chunk(NamedTuple):
    outcomes: list[Outcome]
    new_calls: list[NewCall | None]
    rows: CallRows
    answers: list[dict[str, Any]]


# What the caller is told about a span's items, given their outcomes and the calls planned for
# them (each assumed written: the few the database refuses are described again after).
Describe = Callable[[Span, Sequence[Outcome], Sequence[NewCall | None]], list[dict[str, Any]]]


@dataclass
class Written:
    """What planning and writing a batch's calls came to, item for item: each outcome, the
    call planned for it (None: rejected), its answer, and the ids of the calls the database
    took."""

    outcomes: list[Outcome] = field(default_factory=list)
    new_calls: list[NewCall | None] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    written: set[str] = field(default_factory=set)
    # When the calls written are due: their minutes' jobs are enqueued once, at the end.
    due: list[datetime] = field(default_factory=list)

    def add(self, chunk: Chunk, written: set[str]) -> None:
        self.outcomes.extend(chunk.outcomes)
        self.new_calls.extend(chunk.new_calls)
        self.answers.extend(chunk.answers)
        self.written |= written
        self.due.extend(written_instants(chunk.rows, written))


# Screens the items of [start, end) in place before they are planned.
ScreenSpan = Callable[[int, int], Awaitable[None]]


def plans_in_chunks(strategy: str, items: Sequence[Intake]) -> bool:
    """Whether planning `items` a chunk at a time gives the plan of the whole batch."""
    return strategy == "earliest" and not any(
        isinstance(item, ParsedItem) and item.plan.scheduled is not None for item in items
    )


class BatchPlanning:
    """Plans a batch's items a span at a time, or all at once on the first span when chunks
    would not plan as the whole batch does (see the module's docstring)."""

    def __init__(
        self,
        items: Sequence[Intake],
        planner: Planner,
        label: Callable[[int], str],
    ) -> None:
        self.items, self.planner, self.label = items, planner, label
        self.whole: list[Outcome] | None = None
        self.in_chunks = plans_in_chunks(planner.strategy, items)

    def __call__(self, span: Span) -> list[Outcome]:
        if self.in_chunks:
            chunk = self.items[span.start : span.end]
            return plan_parsed(self.planner, chunk, start=span.start, label=self.label)
        if self.whole is None:
            self.whole = plan_parsed(self.planner, self.items, label=self.label)
        return self.whole[span.start : span.end]


def spans(count: int) -> list[Span]:
    """The chunks of `count` items: a small first one, so that the database starts early."""
    if count <= FIRST_CHUNK:
        return [Span(0, count)]
    bounds = [0, *range(FIRST_CHUNK, count, CHUNK), count]
    return [Span(start, end) for start, end in itertools.pairwise(bounds)]


async def plan_and_write(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    planning: BatchPlanning,
    describe: Describe,
    *,
    batch_id: str,
    now: datetime,
    screen_later: ScreenSpan | None = None,
    known_contacts: set[str] | None = None,
) -> Written:
    """Plan the items, describe them and write the calls planned, chunk after chunk, each
    chunk's database work overlapping the next one's screening (by `screen_later`, when the
    caller screened only the first chunk) and planning; then enqueue the minutes of the calls
    written. `known_contacts`: the contact ids the screening found, growing as later chunks
    are screened (`writing.write_rows`)."""
    assert screen_later is None or planning.in_chunks, "a span is planned once it is screened"
    chunker = _Chunker(tenant_id, planning, describe)

    async def prepare(span: Span) -> Chunk:
        if span.start == 0:
            return await off_the_loop(chunker, span)
        if screen_later is not None:
            await screen_later(span.start, span.end)
        return await asyncio.to_thread(chunker, span)

    async def write(chunk: Chunk) -> tuple[Chunk, set[str]]:
        written = await write_rows(session, tenant_id, calling, chunk.rows, batch_id=batch_id,
                                   now=now, known_contacts=known_contacts)  # fmt: skip
        return chunk, written

    done = Written()
    for chunk, written in await overlapped(len(planning.items), prepare, write):
        done.add(chunk, written)
    await make_dispatchable(session, tenant_id, done.due)
    return done


async def overlapped(
    count: int,
    prepare: Callable[[Span], Awaitable[P]],
    consume: Callable[[P], Awaitable[R]],
) -> list[R]:
    """`consume(prepare(span))` for each span of `count` items in order, each `prepare` after
    the first running while the event loop awaits the `consume` of the span before (the
    database's work, usually). `prepare` must not use the connection `consume` does (its CPU
    work belongs in a worker thread, one span at a time)."""
    first, *rest = spans(count)
    ready = await prepare(first)
    results: list[R] = []
    for following in rest:
        result, prepared = await both(consume(ready), prepare(following))
        results.append(result)
        ready = prepared
    results.append(await consume(ready))
    return results


async def off_the_loop(work: Callable[[Span], P], span: Span) -> P:
    """`work(span)`, in a worker thread when the span holds more than INLINE_ITEMS items."""
    if span.end - span.start > INLINE_ITEMS:
        return await asyncio.to_thread(work, span)
    return work(span)


class _Chunker:
    """A span's outcomes, the calls planned for it, their rows and the items' answers: pure
    CPU work, safe to run in a worker thread (one span at a time, in order)."""

    def __init__(self, tenant_id: str, planning: BatchPlanning, describe: Describe) -> None:
        self.tenant_id, self.planning, self.describe = tenant_id, planning, describe

    def __call__(self, span: Span) -> Chunk:
        outcomes = self.planning(span)
        new_calls = new_calls_for(self.planning.items[span.start : span.end], outcomes)
        rows = call_rows(self.tenant_id, [call for call in new_calls if call is not None])
        return Chunk(outcomes, new_calls, rows, self.describe(span, outcomes, new_calls))


def new_calls_for(items: Sequence[Intake], outcomes: Sequence[Outcome]) -> list[NewCall | None]:
    """The call to write for each item that was planned, in item order."""
    ids = iter(new_ids("call", len(items)))
    return [
        NewCall(next(ids), item.plan.name, outcome, item.content, item.plan.allow_duplicate)
        if isinstance(item, ParsedItem) and isinstance(outcome, Scheduled)
        else None
        for item, outcome in zip(items, outcomes, strict=True)
    ]
