"""place_versions: a number per provider that the database changes on every write to what a
reservation reads about its place (the provider, its availability rules, its visit types,
the tenant's webhook endpoints), so that a reservation written on a place read before
compares one integer instead of the place's rows (docs/booking.md, "Reserving")

Triggers keep it, on both databases, so that no write path can forget it: a provider's row
is made (or its number moved on) when the provider is inserted, and every insert, update or
delete of the provider, its rules or its visit types moves its number on; an endpoint's
insert, delete, or change of tenant, `enabled` or `event_types` moves on every number of its
tenant. A row is never deleted with its provider (no foreign key to providers): a provider
deleted and made again goes on from the number it had, never back to one already read.

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MADE = """
    INSERT INTO place_versions (tenant_id, provider_id, version)
    VALUES (NEW.tenant_id, NEW.id, 1)
    ON CONFLICT (tenant_id, provider_id) DO UPDATE SET version = place_versions.version + 1;
"""
_ONE = """
    UPDATE place_versions SET version = version + 1
    WHERE tenant_id = {row}.tenant_id AND provider_id = {row}.{provider};
"""
_EVERY = "UPDATE place_versions SET version = version + 1;"
_TENANT = "UPDATE place_versions SET version = version + 1 WHERE tenant_id = {row}.tenant_id;"

# (table, the column naming its provider) whose rows a reservation's place reads
_PLACE_TABLES = (
    ("providers", "id"),
    ("availability", "provider_id"),
    ("visit_types", "provider_id"),
)
_TRUNCATED = ("providers", "availability", "visit_types", "webhook_endpoints")
# An endpoint's other columns (its failures, its rate) change on deliveries and are not read.
_ENDPOINT_COLUMNS = "tenant_id, enabled, event_types"


def _place_bodies(table: str, provider: str) -> dict[str, str]:
    """What each write to `table` runs, by event (SQL with NEW and OLD)."""
    new = _MADE if table == "providers" else _ONE.format(row="NEW", provider=provider)
    old = _ONE.format(row="OLD", provider=provider)
    return {"INSERT": new, "UPDATE": new + old, "DELETE": old}


def _endpoint_bodies() -> dict[str, str]:
    new, old = _TENANT.format(row="NEW"), _TENANT.format(row="OLD")
    return {"INSERT": new, f"UPDATE OF {_ENDPOINT_COLUMNS}": new + old, "DELETE": old}


def _triggers() -> dict[str, tuple[str, dict[str, str]]]:
    """Trigger name prefix: (table, bodies by event)."""
    triggers = {f"{table}_place_version": (table, _place_bodies(table, provider))
                for table, provider in _PLACE_TABLES}  # fmt: skip
    triggers["webhook_endpoints_place_version"] = ("webhook_endpoints", _endpoint_bodies())
    return triggers


def upgrade() -> None:
    op.create_table(
        "place_versions",
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_place_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "provider_id", name=op.f("pk_place_versions")),
    )
    op.execute(
        "INSERT INTO place_versions (tenant_id, provider_id, version)"
        " SELECT tenant_id, id, 1 FROM providers"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (table, bodies) in _triggers().items():
        for event, body in bodies.items():
            suffix = event.split()[0].lower()
            if postgres:
                _create_postgres_trigger(f"{name}_{suffix}", table, event, body)
            else:
                op.execute(
                    f"CREATE TRIGGER {name}_{suffix} AFTER {event} ON {table}"
                    f" FOR EACH ROW BEGIN {body} END"
                )
    if postgres:
        _create_truncate_triggers()


def _create_postgres_trigger(
    name: str, table: str, event: str, body: str, each: str = "ROW"
) -> None:
    op.execute(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {body} RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH {each} EXECUTE FUNCTION {name}()"
    )


def _create_truncate_triggers() -> None:
    """PostgreSQL runs no row trigger for TRUNCATE: one emptied table moves every number on
    (SQLite has no TRUNCATE; its DELETE runs the row triggers)."""
    for table in _TRUNCATED:
        _create_postgres_trigger(f"{table}_place_version_truncate", table, "TRUNCATE",
                                 _EVERY, each="STATEMENT")  # fmt: skip


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in _TRUNCATED:
            op.execute(f"DROP TRIGGER {table}_place_version_truncate ON {table}")
            op.execute(f"DROP FUNCTION {table}_place_version_truncate()")
    for name, (table, bodies) in _triggers().items():
        for event in bodies:
            trigger = f"{name}_{event.split()[0].lower()}"
            op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if postgres else ""))
            if postgres:
                op.execute(f"DROP FUNCTION {trigger}()")
    op.drop_table("place_versions")
