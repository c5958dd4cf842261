"""place_versions and endpoint_versions: numbers the database changes on every write to what
a reservation reads about its place (a provider's: the provider, its availability rules, its
visit types; a tenant's: its webhook endpoints), so that a reservation written on a place
read before compares two integers instead of the place's rows (docs/booking.md, "Reserving")

Triggers keep them, on both databases, so that no write path can forget them: a provider's
row is made (or its number moved on) when the provider is inserted, and every insert, update
or delete of the provider, its rules or its visit types moves its number on; an endpoint's
insert, delete, or change of tenant, `enabled` or `event_types` moves its tenant's endpoint
number on. A provider's row is never deleted with its provider (no foreign key to
providers): a provider deleted and made again goes on from the number it had, never back to
one already read. The endpoints' number is the tenant's own row, apart from the providers':
an endpoint's change (the delivery pump disabling it holds the endpoint's row, FOR UPDATE)
must not wait for a provider's row that a booking write holds while it waits for the
endpoint's row (FOR KEY SHARE, to deliver its event): that would be a deadlock.

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
_EVERY = "UPDATE {table} SET version = version + 1;"
# A tenant's endpoint number: made by its first endpoint, so a tenant made since has a row
# once it has an endpoint (a tenant without one reads as 0); a deleted endpoint only moves an
# existing row on (a tenant deleted with its endpoints has none left to make).
_ENDPOINTS_MADE = """
    INSERT INTO endpoint_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET version = endpoint_versions.version + 1;
"""
_ENDPOINTS_MOVED = (
    "UPDATE endpoint_versions SET version = version + 1 WHERE tenant_id = OLD.tenant_id;"
)

# (table, the column naming its provider) whose rows a reservation's place reads
_PLACE_TABLES = (
    ("providers", "id"),
    ("availability", "provider_id"),
    ("visit_types", "provider_id"),
)
_TRUNCATED = {
    "providers": "place_versions",
    "availability": "place_versions",
    "visit_types": "place_versions",
    "webhook_endpoints": "endpoint_versions",
}
# An endpoint's other columns (its failures, its rate) change on deliveries and are not read.
_ENDPOINT_COLUMNS = "tenant_id, enabled, event_types"


def _place_bodies(table: str, provider: str) -> dict[str, str]:
    """What each write to `table` runs, by event (SQL with NEW and OLD)."""
    new = _MADE if table == "providers" else _ONE.format(row="NEW", provider=provider)
    old = _ONE.format(row="OLD", provider=provider)
    return {"INSERT": new, "UPDATE": new + old, "DELETE": old}


def _endpoint_bodies() -> dict[str, str]:
    new, old = _ENDPOINTS_MADE, _ENDPOINTS_MOVED
    return {"INSERT": new, f"UPDATE OF {_ENDPOINT_COLUMNS}": new + old, "DELETE": old}


def _triggers() -> dict[str, tuple[str, dict[str, str]]]:
    """Trigger name prefix: (table, bodies by event)."""
    triggers = {f"{table}_place_version": (table, _place_bodies(table, provider))
                for table, provider in _PLACE_TABLES}  # fmt: skip
    triggers["webhook_endpoints_version"] = ("webhook_endpoints", _endpoint_bodies())
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
    op.create_table(
        "endpoint_versions",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_endpoint_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_endpoint_versions")),
    )
    op.execute(
        "INSERT INTO place_versions (tenant_id, provider_id, version)"
        " SELECT tenant_id, id, 1 FROM providers"
    )
    op.execute(
        "INSERT INTO endpoint_versions (tenant_id, version)"
        " SELECT DISTINCT tenant_id, 1 FROM webhook_endpoints"
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
    """PostgreSQL runs no row trigger for TRUNCATE: one emptied table moves every number of its
    kind on
    (SQLite has no TRUNCATE; its DELETE runs the row triggers)."""
    for table, versions in _TRUNCATED.items():
        _create_postgres_trigger(f"{table}_version_truncate", table, "TRUNCATE",
                                 _EVERY.format(table=versions), each="STATEMENT")  # fmt: skip


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in _TRUNCATED:
            op.execute(f"DROP TRIGGER {table}_version_truncate ON {table}")
            op.execute(f"DROP FUNCTION {table}_version_truncate()")
    for name, (table, bodies) in _triggers().items():
        for event in bodies:
            trigger = f"{name}_{event.split()[0].lower()}"
            op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if postgres else ""))
            if postgres:
                op.execute(f"DROP FUNCTION {trigger}()")
    op.drop_table("endpoint_versions")
    op.drop_table("place_versions")
