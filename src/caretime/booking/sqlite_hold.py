"""SQLite: a hold that is all its request writes, written from BEGIN IMMEDIATE to COMMIT by
one call on the connection's thread (docs/booking.md, "Reserving").

SQLite has one writer: BEGIN IMMEDIATE takes the database's write lock and every other
writer waits for it. Through aiosqlite each statement is a hop from the event loop to the
connection's thread and back, so a transaction of BEGIN, three inserts and COMMIT held the
lock across five hops, each waiting for a busy event loop: under load most of the lock's
time was spent waiting for Python, not SQLite. Here the five run in one hop, so the lock is
held only while SQLite works. The statements are SQLAlchemy's own (the same Core inserts as
holding's, compiled once, values converted by their columns' types), so the rows are those
the session would write; the no-overlap trigger decides as before.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from typing import Any, NamedTuple

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert

from caretime.compiled import Conversions
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


async def write_at_once(
    engine: AsyncEngine, writes: Insert3, check: Write | None = None
) -> tuple[bool, int | None]:
    """Run the three inserts as one transaction in one hop: (False, None) with nothing
    written if the hold would overlap an active visit or its Idempotency-Key is taken, or
    if `check` (a SELECT, first in the transaction) does not answer 1; else (True, the sweep
    job's id if this wrote it)."""
    bound = [(prepared.sql, prepared.conversions.bound(values)) for prepared, values in writes]
    checked = None if check is None else (check[0].sql, check[0].conversions.bound(check[1]))
    outcome: tuple[bool, int | None] = await on_connection_thread(engine, _run, bound, checked)
    return outcome


def _run(
    connection: sqlite3.Connection,
    bound: list[tuple[str, dict[str, Any]]],
    check: tuple[str, dict[str, Any]] | None,
) -> Any:
    """On the connection's thread. SQLite undoes a statement its trigger refuses, not the
    transaction: the ROLLBACK leaves nothing of it."""
    (hold_sql, hold), (event_sql, event), (sweep_sql, sweep) = bound
    connection.execute("BEGIN IMMEDIATE")
    try:
        inserted = None
        if check is None or connection.execute(*check).fetchone()[0] == 1:
            with contextlib.suppress(sqlite3.IntegrityError):  # the no-overlap trigger
                inserted = connection.execute(hold_sql, hold).fetchone()
        if inserted is None:  # or the idempotency key is taken
            connection.execute("ROLLBACK")
            return False, None
        connection.execute(event_sql, event)
        job = connection.execute(sweep_sql, sweep).fetchone()
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return True, None if job is None else job[0]
