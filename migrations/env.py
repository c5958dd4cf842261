"""Alembic environment: runs on the connection caretime hands it (see caretime.migrate)."""

from typing import Any

import sqlalchemy as sa
from alembic import context

from caretime.db import UTCDateTime
from caretime.migrate import target_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `caretime migrate`, which supplies the connection")


def render_item(type_: str, obj: Any, _context: Any) -> str | bool:
    """Spell our own column types the way the migration template imports them."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "UTCDateTime()"
    if type_ == "type" and isinstance(obj, sa.JSON):
        return "JSONDocument"
    return False


context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
