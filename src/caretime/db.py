"""Database plumbing: the declarative base, column types, engines and the transaction owner."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import JSON, DateTime, MetaData, Select, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from caretime.sqlite_driver import one_hop

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SelectT = TypeVar("SelectT", bound=Select[Any])
AfterCommit = Callable[[AsyncSession], Awaitable[None]]
_AFTER_COMMIT = "after_commit"
log = logging.getLogger("caretime.db")
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime written to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for `url`. On SQLite its transactions take the write lock up front.

    Every engine keeps a statement's parameters out of its errors' text (`hide_parameters`):
    they hold patients' names, phone numbers and message bodies, and an unexpected database
    error is logged with its traceback."""
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, "BEGIN IMMEDIATE", **kwargs)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    _ping_when_idle(engine)
    return engine


# A connection back in the pool for less than this is used without a ping.
TRUSTED_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it sat idle for a while, instead of before
    every use (pool_pre_ping): asyncpg's ping is three round trips (BEGIN, a query,
    ROLLBACK), more than most requests' own statements. A busy pool's connections were in
    use a moment ago; after a restart of the database within that moment, the first
    statement fails, and its disconnect error makes the pool drop every connection."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.pop("returned_at", None)
        if returned_at is None or time.monotonic() - returned_at < TRUSTED_IDLE_SECONDS:
            return  # just connected, or in use a moment ago
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer a ping") from exc


READERS = 32


def create_read_engine(url: str, engine: AsyncEngine) -> AsyncEngine:
    """For requests that only read: each statement is its own transaction (autocommit), so a
    read costs no BEGIN or COMMIT round trip and on SQLite never waits for the writer (WAL
    readers run beside it). A request's statements may see different committed states,
    as under PostgreSQL's READ COMMITTED they already did. PostgreSQL shares `engine`'s pool;
    SQLite gets connections of its own."""
    if not url.startswith("sqlite"):
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    # Nothing to roll back when a connection goes back to the pool: no round trip for it.
    # Enough pooled connections for the concurrent readers a server sees: beyond the pool,
    # each reader would open (a thread, the file, its pragmas) and close a connection.
    return _create_sqlite_engine(
        url, None, pool_reset_on_return=None, pool_size=READERS, max_overflow=READERS
    )


def _create_sqlite_engine(url: str, begin: str | None, **kwargs: Any) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        one_hop(dbapi_connection)
        # Let SQLAlchemy (not the driver) emit BEGIN, so we can make it IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if begin is None:
        return engine  # the driver is in autocommit: each statement its own transaction

    @event.listens_for(sync_engine, "begin")
    def _begin(connection: Any) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting;
        # taking the write lock up front makes writers queue on busy_timeout instead.
        connection.exec_driver_sql(begin)

    return engine


def locking(statement: SelectT, *, of: Any = None) -> SelectT:
    """`statement` locking the rows it reads until the transaction ends, the one way caretime
    locks rows. It is PostgreSQL's FOR NO KEY UPDATE, not FOR UPDATE: every INSERT of a row
    that references a locked row (a batch row naming its tenant, an event naming its message)
    takes FOR KEY SHARE on it, which FOR UPDATE waits for. A transaction that inserted such
    a row and then asked for FOR UPDATE deadlocked with its twin doing the same (issue 20).
    FOR NO KEY UPDATE still serialises lockers and UPDATEs, and nothing here changes a key.
    SQLite ignores it: its single writer already serialises."""
    return statement.with_for_update(key_share=True, of=of)


async def serialise_on(session: AsyncSession, key: str) -> None:
    """Until the transaction ends, one transaction at a time holds `key` (PostgreSQL advisory
    lock); SQLite's single writer serialises already."""
    if is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


async def serialise_on_all(session: AsyncSession, keys: list[str]) -> None:
    """`serialise_on` for several keys in one round trip, taken in sorted order (two
    transactions asking for overlapping sets cannot wait for each other in a cycle)."""
    if is_postgres(session) and keys:
        await session.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtext(key)) FROM unnest(CAST(:keys AS text[])) "
                "WITH ORDINALITY AS held(key, position) ORDER BY position"
            ),
            {"keys": sorted(set(keys))},
        )


_CONTENDED = "contended_lock"


def note_contended_lock(session: AsyncSession) -> None:
    """This transaction now holds a row lock that others are likely waiting for (a won
    first-yes claim): whoever owns the transaction should commit it soon (see
    messaging.desk, which ends its batch there)."""
    session.info[_CONTENDED] = True


def holds_contended_lock(session: AsyncSession) -> bool:
    return bool(session.info.get(_CONTENDED))


def is_postgres(on: AsyncSession | AsyncConnection | AsyncEngine) -> bool:
    dialect = on.get_bind().dialect if isinstance(on, AsyncSession) else on.dialect
    return dialect.name == "postgresql"


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends normally, rolls back when it raises.
    After the commit, what the work asked for with `after_commit` runs, each in its own
    transaction."""
    async with sessions() as session:
        async with session.begin():
            yield session
        await run_after_commit(sessions, session)


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """`transaction` for a reader session (`create_read_engine`: each statement commits on
    its own), without the SQLAlchemy transaction around it: beginning and committing one
    sends nothing to the database there, but costs a request more CPU than its SELECT's
    own work in SQLAlchemy. What the work left pending in the session is still committed,
    and what it asked for with `after_commit` still runs after it, as `transaction` would."""
    async with sessions() as session:
        yield session
        if session.new or session.deleted or session.dirty:
            await session.commit()
    await run_after_commit(sessions, session)


def after_commit(session: AsyncSession, work: AfterCommit) -> None:
    """Run `work` in a transaction of its own once this session's transaction has committed
    (never if it rolls back). For what must not hold this transaction's locks: whoever asks
    also makes it durable (a job that does the same), since a crash can come in between."""
    session.info.setdefault(_AFTER_COMMIT, []).append(work)


async def run_after_commit(
    sessions: async_sessionmaker[AsyncSession], committed: AsyncSession
) -> None:
    """Called by a transaction's owner after its commit. A failure is logged, not raised:
    the committed change stands, and the durable copy of the work does it later."""
    for work in committed.info.pop(_AFTER_COMMIT, []):
        try:
            async with sessions() as session, session.begin():
                await work(session)
        except Exception as exc:
            log.warning("after_commit_failed", extra={"fields": {"error": type(exc).__name__}})
