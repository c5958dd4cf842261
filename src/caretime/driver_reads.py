"""A hot read's one statement sent by the driver itself, on either database: by asyncpg
(`pg_direct`) or by sqlite3 in one hop (`sqlite_driver`), with no SQLAlchemy execution around
it (docs/architecture.md, "Borrowed connections")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from caretime import pg_direct, sqlite_driver
from caretime.db import is_postgres


async def fetch_all(
    on: AsyncConnection | AsyncEngine,
    statement: Select[Any] | CompoundSelect[Any],
    params: Mapping[str, Any],
) -> Sequence[Sequence[Any]]:
    """The rows `statement` answers with `params`, on the connection under `on` (an
    engine's: one of its pool borrowed for the statement alone). Driver errors are raised as
    `pooled.DriverError`."""
    if is_postgres(on):
        return await pg_direct.fetch_all(on, statement, params)
    return await sqlite_driver.fetch_all(on, statement, params)
