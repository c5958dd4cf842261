"""PostgreSQL: a hot path's one statement run by asyncpg itself (the reservation's hold,
docs/booking.md "Reserving"; the slot search, docs/benchmarks.md "slots2").

Through SQLAlchemy, one execution of the hold's statement cost the request ~0.6 ms of CPU
beside asyncpg's ~0.1 ms: the compiled cache's lookup, processing 35 parameters, the
adapter's lock and greenlet hops, the result's rows. Here the statement is SQLAlchemy's
own, compiled once by the engine's dialect (its parameters cast as SQLAlchemy casts them),
its values converted by their types' bind processors as SQLAlchemy would convert them, and
sent by asyncpg (which prepares it once per connection); what comes back is asyncpg's row.
The sibling of booking.sqlite_hold, which does the same for SQLite's one hop. Statements are
prepared by asyncpg: behind a pooler in transaction mode (pgbouncer) they need its prepared
statement support (pgbouncer 1.21+, `max_prepared_statements`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from caretime.compiled import Conversions, conversions
from caretime.pooled import borrowed, under, values_hidden


class Prepared(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the parameters in their positions ($1, $2, ...)
    conversions: Conversions

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional values for `params` (and the statement's constants), converted."""
        bound = self.conversions.bound(params)
        return [bound[name] for name in self.names]


@functools.cache
def prepared(statement: Select[Any] | CompoundSelect[Any], dialect: Dialect) -> Prepared:
    """`statement` as `dialect` sends it, compiled once."""
    compiled = statement.compile(dialect=dialect)
    assert compiled.positiontup is not None
    return Prepared(compiled.string, tuple(compiled.positiontup), conversions(compiled, dialect))


async def fetch_one(engine: AsyncEngine, statement: Select[Any], params: Mapping[str, Any]) -> Any:
    """The one row `statement` answers with `params`, run on a connection of `engine`'s pool
    by asyncpg, outside any transaction (the statement is its own). The pool's connection
    is taken as it is (no SQLAlchemy Connection around it: ~60 µs less a request); it goes
    back with nothing to roll back. asyncpg's errors are raised as `pooled.DriverError`."""
    sent = prepared(statement, engine.dialect)
    async with borrowed(engine) as pooled:
        with values_hidden(sent.sql):
            return await pooled.driver_connection.fetchrow(sent.sql, *sent.arguments(params))


async def fetch_all(
    on: AsyncConnection | AsyncEngine,
    statement: Select[Any] | CompoundSelect[Any],
    params: Mapping[str, Any],
) -> list[Any]:
    """The rows `statement` answers with `params`, run by asyncpg on the driver connection
    under `on` (`pooled.under`): inside the transaction SQLAlchemy's adapter has begun on a
    connection, if any, else as a statement of its own. No compiled-cache lookup (hashing a
    large statement's key), no cursor or result objects: asyncpg's rows. asyncpg's errors are
    raised as `pooled.DriverError`."""
    sent = prepared(statement, on.dialect)
    async with under(on) as pooled:
        with values_hidden(sent.sql):
            return await pooled.driver_connection.fetch(sent.sql, *sent.arguments(params))  # type: ignore[no-any-return]
