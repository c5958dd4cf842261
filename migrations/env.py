"""Alembic environment: runs on the connection caretime hands it (see caretime.migrate)."""

from alembic import context

from caretime.migrate import target_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `caretime migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
