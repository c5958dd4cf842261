"""One thread hop per SQLite statement instead of four.

aiosqlite runs each call on its connection's own thread, and every call is a hop there and
back through the event loop. SQLAlchemy's aiosqlite cursor makes four per statement (open a
cursor, execute, fetch the rows, close the cursor); on a loaded machine each hop cost
0.3-1.5 ms, more than the statement. This cursor does the four in one call on that thread,
then serves the rows it brought back. Installed on each connection by `db.py`.
"""

from __future__ import annotations

import collections
import functools
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Compiled
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from caretime.clock import ensure_utc
from caretime.compiled import Conversions, conversions
from caretime.pooled import borrowed, under, values_hidden

Outcome = tuple[Any, int, int | None, list[Any]]
T = TypeVar("T")


def _run_statement(connection: sqlite3.Connection, operation: str, parameters: Any) -> Outcome:
    cursor = connection.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, operation: str, parameters: Any) -> Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return None, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # the statement's cursor closed on the connection's thread already

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._take(self._hop(_run_statement, operation, parameters))

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._take(self._hop(_run_many, operation, seq_of_parameters))

    def setinputsizes(self, *inputsizes: Any) -> None:
        return

    def _hop(self, work: Callable[..., Outcome], operation: Any, parameters: Any) -> Outcome:
        try:
            outcome: Outcome = await_(self._on_thread(work, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        return outcome

    async def _on_thread(
        self, work: Callable[..., Outcome], operation: Any, parameters: Any
    ) -> Outcome:
        return await _hop(self._adapt_connection, work, operation, parameters)

    def _take(self, outcome: Outcome) -> None:
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """Also: a COMMIT or ROLLBACK only when there can be a transaction to end. SQLAlchemy
    rolls back every connection that goes back to the pool, and aiosqlite sends that to the
    connection's thread and back (a hop, as costly as a statement) to do nothing when no
    transaction was begun: a hold written in one hop (booking.sqlite_hold) paid two."""

    __slots__ = ()
    _cursor_cls = OneHopCursor

    def commit(self) -> None:
        if not self._settled():
            super().commit()

    def rollback(self) -> None:
        if not self._settled():
            super().rollback()

    def _settled(self) -> bool:
        """No transaction is open, nor can one be about to open: every hop sent has
        finished (a hop whose caller was cancelled still runs, and a BEGIN in it would open
        one; the rollback then goes behind it on the thread, as before)."""
        connection = self._connection
        raw = connection._connection  # sqlite3's, None once closed
        if raw is None:
            return False
        hops = _hops(connection)
        return hops.done == hops.sent and not raw.in_transaction


class _Hops:
    """Hops sent to a connection's thread (counted on the event loop) and finished there
    (counted on the thread): each count has one writer."""

    __slots__ = ("done", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.done = 0


def _hops(connection: Any) -> _Hops:
    """`connection`'s (aiosqlite's) hop counts, kept on it."""
    hops: _Hops | None = getattr(connection, "_caretime_hops", None)
    if hops is None:
        hops = connection._caretime_hops = _Hops()
    return hops


async def _hop(adapted: Any, work: Callable[..., T], *args: Any) -> T:
    """`work(sqlite3_connection, *args)` on `adapted`'s thread, in one hop, counted."""
    async with adapted._execute_mutex:
        connection = adapted._connection
        hops = _hops(connection)
        hops.sent += 1
        outcome: T = await connection._execute(_counted, hops, work, connection._conn, *args)
        return outcome


def _counted(hops: _Hops, work: Callable[..., T], raw: sqlite3.Connection, *args: Any) -> T:
    try:
        return work(raw, *args)
    finally:
        hops.done += 1


async def on_connection_thread(engine: AsyncEngine, work: Callable[..., T], *args: Any) -> T:
    """`work(sqlite3_connection, *args)` in one hop to the thread of a connection of
    `engine`'s pool, as this module's cursors run a statement: for work that must run there
    as a whole (several statements of one transaction with nothing in between). The pool's
    connection is taken as it is, with no SQLAlchemy Connection around it (two greenlet
    hops less); it goes back with nothing to roll back if `work` left no transaction.
    sqlite3's errors are raised as `pooled.DriverError`."""
    async with borrowed(engine) as pooled:
        with values_hidden(f"{work.__module__}.{work.__qualname__}"):
            return await _hop(pooled.dbapi_connection, work, *args)


def one_hop(dbapi_connection: Any) -> None:
    """Make an aiosqlite connection's cursors run each statement in one hop."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = OneHopConnection


# Statements sqlite3 runs itself (the slot search below, booking.sqlite_hold's hold) are
# compiled with :name parameters (sqlite3 binds those from a dict); the types' conversions
# are those of the aiosqlite dialect (it is the pysqlite one, made async).
NAMED = SQLiteDialect_pysqlite(paramstyle="named")


def sent_as(compiled: Compiled) -> tuple[str, Conversions]:
    """`compiled` as sqlite3 is given it: its text with its own text constants written in
    (`_with_literals`), and its parameters' conversions (`_conversions`)."""
    found = _conversions(compiled)
    return _with_literals(compiled, found.constants), found


def _conversions(compiled: Compiled) -> Conversions:
    """`compiled`'s conversions (`compiled.conversions` on the NAMED dialect), an aware
    instant's (`db.UTCDateTime`) done by `utc_text` rather than SQLAlchemy's chain of
    processors: the same text at a third of the cost, and a hold or a search converts eight
    to fifteen of them."""
    from caretime.db import UTCDateTime  # db installs this module's cursor: imported late

    found = conversions(compiled, NAMED)  # its constants converted by SQLAlchemy's own
    binds = compiled.binds  # type: ignore[attr-defined]
    convert = {
        name: utc_text if isinstance(binds[name].type, UTCDateTime) else processor
        for name, processor in found.convert.items()
    }
    return Conversions(found.constants, convert)


def _with_literals(compiled: Compiled, constants: Mapping[str, Any]) -> str:
    """`compiled`'s SQL with its text constants (a status, a kind) written in it as literals
    rather than bound. A bound value compared with a column that a partial index's WHERE
    names (`appointments.status` in `ix_appointments_held_deadline ... WHERE status =
    'held'`) makes SQLite prepare the statement again each time that value is bound, in case
    the index then applies: the slot search was prepared anew on every execution (~90 µs of
    a day's ~130). Their values are the statement's own, never a request's."""
    sql: str = compiled.string
    for name in set(compiled.bind_names.values()) & set(constants):  # type: ignore[attr-defined]
        value = constants[name]
        if isinstance(value, str) and value.isascii() and value.isprintable():
            literal = "'" + value.replace("'", "''") + "'"
            sql = re.sub(rf":{re.escape(name)}\b", literal.replace("\\", "\\\\"), sql)
    return sql


def utc_text(value: datetime | None) -> str | None:
    """An aware instant as SQLAlchemy stores a `db.UTCDateTime` in SQLite: its UTC wall time
    as `YYYY-MM-DD HH:MM:SS.ffffff` (microseconds always written); a naive one refused."""
    if value is None:
        return None
    return ensure_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


class PreparedSelect(NamedTuple):
    """A SELECT run by sqlite3 itself (the slot search, docs/benchmarks.md "slots3")."""

    sql: str
    conversions: Conversions  # its parameters'
    # (position, conversion) of each result column whose type converts what sqlite3 returns
    columns: tuple[tuple[int, Callable[[Any], Any]], ...]

    def row(self, values: Sequence[Any]) -> list[Any]:
        """A row as SQLAlchemy's result would give it (dates and instants, not text)."""
        converted = list(values)
        for position, convert in self.columns:
            converted[position] = convert(converted[position])
        return converted


@functools.cache
def prepared_select(statement: Select[Any] | CompoundSelect[Any]) -> PreparedSelect:
    """`statement` as SQLite text, compiled once, with its parameters' and columns'
    conversions."""
    compiled = statement.compile(dialect=NAMED)
    columns = []
    for position, column in enumerate(statement.selected_columns):
        processor = column.type.dialect_impl(NAMED).result_processor(NAMED, None)
        if processor is not None:
            columns.append((position, processor))
    return PreparedSelect(*sent_as(compiled), tuple(columns))


def _fetch_all(connection: sqlite3.Connection, sql: str, values: dict[str, Any]) -> list[Any]:
    return connection.execute(sql, values).fetchall()


async def fetch_all(
    on: AsyncConnection | AsyncEngine,
    statement: Select[Any] | CompoundSelect[Any],
    params: Mapping[str, Any],
) -> list[list[Any]]:
    """The rows `statement` answers with `params`, run by sqlite3 in one hop on the driver
    connection under `on` (`pooled.under`: a connection's, inside the transaction begun
    there, if any): no compiled-cache lookup (hashing a large statement's key), no cursor or
    result objects; the rows converted by their columns' types. sqlite3's errors are raised
    as `pooled.DriverError`."""
    sent = prepared_select(statement)
    values = sent.conversions.bound(params)
    async with under(on) as pooled:
        with values_hidden(sent.sql):
            rows = await _hop(pooled.dbapi_connection, _fetch_all, sent.sql, values)
    return [sent.row(row) for row in rows]
