"""Autogenerate a migration: `python scripts/new_migration.py "message" 0007`.

It migrates a scratch SQLite database to head, then diffs the models against it. Review the
result by hand: JSON columns should use caretime.db.JSONDocument, instants UTCDateTime().
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command

from caretime import migrate
from caretime.db import create_engine


async def main(message: str, rev_id: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(scratch) / 'autogen.db'}")
        await migrate.upgrade(engine)
        async with engine.begin() as connection:
            await connection.run_sync(_revision, message, rev_id)
        await engine.dispose()


def _revision(connection: object, message: str, rev_id: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
