"""One thread hop per SQLite statement instead of four.

aiosqlite runs each call on its connection's own thread, and every call is a hop there and
back through the event loop. SQLAlchemy's aiosqlite cursor makes four per statement (open a
cursor, execute, fetch the rows, close the cursor); on a loaded machine each hop cost
0.3-1.5 ms, more than the statement. This cursor does the four in one call on that thread,
then serves the rows it brought back. Installed on each connection by `db.py`.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

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
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            outcome: Outcome = await connection._execute(
                work, connection._conn, operation, parameters
            )
            return outcome

    def _take(self, outcome: Outcome) -> None:
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


async def on_connection_thread(
    connection: AsyncConnection, work: Callable[..., T], *args: Any
) -> T:
    """`work(sqlite3_connection, *args)` in one hop to `connection`'s thread, as this
    module's cursors run a statement: for work that must run there as a whole (several
    statements of one transaction with nothing in between)."""
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    async with adapted._execute_mutex:
        aiosqlite_connection = adapted._connection
        outcome: T = await aiosqlite_connection._execute(work, aiosqlite_connection._conn, *args)
        return outcome


def one_hop(dbapi_connection: Any) -> None:
    """Make an aiosqlite connection's cursors run each statement in one hop."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = OneHopConnection
