"""Migrations build the schema from empty on both databases, match the models exactly, and
can be rolled back and re-applied."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from caretime import migrate
from caretime.db import create_engine
from tests.conftest import _create_postgres_database, _drop_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        yield engine
        await engine.dispose()
        return
    admin_url = request.getfixturevalue("postgres_url")
    name = f"caretime_migrations_{uuid.uuid4().hex[:8]}"
    await _create_postgres_database(admin_url, name)
    engine = create_engine(make_url(admin_url).set(database=name).render_as_string(False))
    yield engine
    await engine.dispose()
    await _drop_postgres_database(admin_url, name)


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, migrate.target_metadata()))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_upgrade_from_empty_matches_the_models(empty_engine: AsyncEngine) -> None:
    assert await migrate.pending_revisions(empty_engine)
    await migrate.upgrade(empty_engine)
    assert await migrate.pending_revisions(empty_engine) == []
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_schema_differences) == []


async def test_downgrade_to_base_and_back(empty_engine: AsyncEngine) -> None:
    await migrate.upgrade(empty_engine)
    await migrate.downgrade(empty_engine, "base")
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_table_names) == set()
    await migrate.upgrade(empty_engine)
    async with empty_engine.connect() as connection:
        assert "tenants" in await connection.run_sync(_table_names)
