"""SQLite: holds that are all their requests write, written from BEGIN IMMEDIATE to COMMIT by
one call on the connection's thread, every hold waiting for the writer in one transaction
(group commit: `_Writer`; docs/booking.md, "Reserving").

SQLite has one writer: BEGIN IMMEDIATE takes the database's write lock and every other
writer waits for it. Through aiosqlite each statement is a hop from the event loop to the
connection's thread and back, so a transaction of BEGIN, three inserts and COMMIT held the
lock across five hops, each waiting for a busy event loop: under load most of the lock's
time was spent waiting for Python, not SQLite. Here the five run in one hop, so the lock is
held only while SQLite works; and the holds queued meanwhile share the next hop, BEGIN and
COMMIT instead of contending for the lock. The statements are SQLAlchemy's own (the same
Core inserts as holding's, compiled once, values converted by their columns' types), so the
rows are those the session would write; the no-overlap trigger decides as before.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import sqlite3
import weakref
from typing import Any, NamedTuple

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert

from caretime.compiled import Conversions
from caretime.pooled import DriverError
from caretime.sqlite_driver import NAMED, on_connection_thread, sent_as


class Prepared(NamedTuple):
    sql: str
    conversions: Conversions  # its parameters', by their column types


@functools.cache
def prepared(statement: Insert | Select[Any], keys: tuple[str, ...]) -> Prepared:
    """`statement` (an INSERT of the columns `keys`, or a SELECT of parameters `keys`) as
    SQLite text, compiled once."""
    compiled = statement.compile(dialect=NAMED, column_keys=list(keys))
    sql, found = sent_as(compiled)
    if set(compiled.binds) - set(found.constants) != set(keys):  # a default SQLAlchemy would run
        raise ValueError(f"not a plain statement of {keys}: {sorted(compiled.binds)}")
    return Prepared(sql, found)


class Insert3(NamedTuple):
    """The three inserts of a hold, each with its values; the first and last RETURN an id."""

    hold: tuple[Prepared, dict[str, Any]]
    event: tuple[Prepared, dict[str, Any]]
    sweep: tuple[Prepared, dict[str, Any]]


Write = tuple[Prepared, dict[str, Any]]
Outcome = tuple[bool, int | None]


class Hold(NamedTuple):
    """One hold's statements as sqlite3 is given them: its check (if any) and its inserts."""

    check: tuple[str, dict[str, Any]] | None
    inserts: list[tuple[str, dict[str, Any]]]


async def write_at_once(
    engine: AsyncEngine, writes: Insert3, check: Write | None = None
) -> Outcome:
    """Run the three inserts as one transaction in one hop: (False, None) with nothing
    written if the hold would overlap an active visit or its Idempotency-Key is taken, or
    if `check` (a SELECT, first in the transaction) does not answer 1; else (True, the sweep
    job's id if this wrote it). Answered once the COMMIT that made it durable is done; the
    transaction may be shared with the other holds waiting for the writer (`_Writer`)."""
    bound = [(prepared.sql, prepared.conversions.bound(values)) for prepared, values in writes]
    checked = None if check is None else (check[0].sql, check[0].conversions.bound(check[1]))
    return await _writer(engine).write(engine, Hold(checked, bound))


# A group's holds wait for one COMMIT: a bound keeps the wait of the first and the time the
# write lock is held (other writers queue behind it) short.
MOST_IN_A_GROUP = 32


_Waiting = tuple[Hold, "asyncio.Future[Outcome]"]  # a hold and its request's answer


class _Writer:
    """Group commit for one engine's holds: one task writes every hold queued when it takes
    them, in one transaction and one hop (`_run`), and answers each after the COMMIT; holds
    that come meanwhile wait for the next group. Nothing waits to fill a group: a lone hold
    is written at once. SQLite has one writer, so holds wait for each other anyway; this
    pays the hop, BEGIN IMMEDIATE and COMMIT once a group instead of once a hold, and the
    holds no longer contend for the write lock among themselves (a loser's busy handler
    sleeps)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # not the engine: that would keep it alive (`_writers`)
        self.waiting: collections.deque[_Waiting] = collections.deque()
        self.draining: asyncio.Task[None] | None = None

    async def write(self, engine: AsyncEngine, hold: Hold) -> Outcome:
        answer: asyncio.Future[Outcome] = self.loop.create_future()
        self.waiting.append((hold, answer))
        if self.draining is None or self.draining.done():  # done: cancelled before it began
            # a fresh context: not the request's that started it
            drain = self._drain(engine)
            self.draining = self.loop.create_task(drain, context=contextvars.Context())
        return await answer

    async def _drain(self, engine: AsyncEngine) -> None:
        try:
            while self.waiting:
                group = self._take()
                if group:
                    await self._write(engine, group)
        finally:
            self.draining = None
            while self.waiting:  # only if this task was cancelled (the loop closing)
                self.waiting.popleft()[1].cancel()

    def _take(self) -> list[_Waiting]:
        """The holds queued now (at most MOST_IN_A_GROUP), less those whose request was
        cancelled before its group began."""
        group: list[_Waiting] = []
        while self.waiting and len(group) < MOST_IN_A_GROUP:
            hold, answer = self.waiting.popleft()
            if not answer.done():
                group.append((hold, answer))
        return group

    async def _write(self, engine: AsyncEngine, group: list[_Waiting]) -> None:
        """One transaction for `group`, each request answered after it. No request of the
        group is left waiting, whatever happens here."""
        answers = [answer for _, answer in group]
        try:
            outcomes = await _outcomes(engine, [hold for hold, _ in group])
            for answer, outcome in zip(answers, outcomes, strict=True):
                if not answer.done():  # else its request was cancelled meanwhile
                    _answer(answer, outcome)
        finally:
            for answer in answers:  # not answered: this task was cancelled (the loop closing)
                answer.cancel()  # a no-op for an answered one


async def _outcomes(engine: AsyncEngine, holds: list[Hold]) -> list[Outcome | Exception]:
    """Each hold's outcome in one transaction; its COMMIT's failure (or its connection's)
    is every hold's: none of them was written."""
    try:
        return await on_connection_thread(engine, _run, holds)
    except Exception as error:
        return [_not_written(error, len(holds)) for _ in holds]


class GroupNotWritten(Exception):
    """The transaction a hold shared with the others of its group failed (its COMMIT, its
    connection): nothing of the group was written. Each request raises its own, caused by
    the group's one error (a `pooled.DriverError`: no values)."""


def _not_written(error: Exception, size: int) -> GroupNotWritten:
    failed = GroupNotWritten(f"the transaction of a group of {size} holds failed: none written")
    failed.__cause__ = error
    return failed


def _answer(answer: asyncio.Future[Outcome], outcome: Outcome | Exception) -> None:
    if isinstance(outcome, GroupNotWritten):
        answer.set_exception(outcome)
    elif isinstance(outcome, Exception):  # one hold's alone, raised without its values
        answer.set_exception(DriverError(f"{_run_one.__module__}._run_one", outcome))
    else:
        answer.set_result(outcome)


_writers: weakref.WeakKeyDictionary[AsyncEngine, _Writer] = weakref.WeakKeyDictionary()


def _writer(engine: AsyncEngine) -> _Writer:
    """`engine`'s group writer on the running loop (a test's engine may outlive its loop)."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(engine)
    if writer is None or writer.loop is not loop:
        writer = _writers[engine] = _Writer(loop)
    return writer


def _run(connection: sqlite3.Connection, holds: list[Hold]) -> list[Outcome | Exception]:
    """On the connection's thread: `holds` in one transaction, each in a savepoint of its
    own, so that one refused (or failing) is undone alone and each later one's check and
    trigger see the rows of those before it. A failure that ends the transaction (its
    COMMIT's above all) is raised: nothing of the group is written."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        outcomes = [_run_one(connection, hold) for hold in holds]
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return outcomes


def _run_one(connection: sqlite3.Connection, hold: Hold) -> Outcome | Exception:
    """One hold under SAVEPOINT: its outcome, or the error that undid it alone. SQLite undoes
    a statement its trigger refuses, not the transaction; the savepoint undoes the rest."""
    connection.execute("SAVEPOINT hold")
    outcome: Outcome | Exception
    try:
        outcome = _written(connection, hold)
    except Exception as error:  # sqlite3's, or binding's (a value out of SQLite's range)
        if not connection.in_transaction:  # SQLite ended it (a full disk, an I/O error)
            raise
        outcome = error
    if isinstance(outcome, Exception) or not outcome[0]:
        connection.execute("ROLLBACK TO hold")
    connection.execute("RELEASE hold")
    return outcome


def _written(connection: sqlite3.Connection, hold: Hold) -> Outcome:
    (hold_sql, row), (event_sql, event), (sweep_sql, sweep) = hold.inserts
    if hold.check is not None and connection.execute(*hold.check).fetchone()[0] != 1:
        return False, None
    try:
        inserted = connection.execute(hold_sql, row).fetchone()
    except sqlite3.IntegrityError:  # the no-overlap trigger
        return False, None
    if inserted is None:  # the idempotency key is taken
        return False, None
    connection.execute(event_sql, event)
    job = connection.execute(sweep_sql, sweep).fetchone()
    return True, None if job is None else job[0]
