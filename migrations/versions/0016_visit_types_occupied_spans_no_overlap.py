"""visit types; appointments occupy a span (visit plus buffers) that never overlaps another

The partial unique index on (provider, slot_start) becomes, on PostgreSQL, an exclusion
constraint over the occupied time range (btree_gist, tstzrange &&) and, on SQLite, two
triggers that refuse an overlapping insert or update (SQLite runs one writer at a time, so
the trigger's check and the write are one atomic step).

Revision ID: 0016
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from caretime.db import JSONDocument, UTCDateTime

revision: str = "0016"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('held', 'confirmed')"
_OCCUPYING = "status IN ('held', 'confirmed', 'arrived')"
_OLD_STATUSES = "status IN ('held', 'confirmed', 'expired', 'denied', 'cancelled')"
_NEW_STATUSES = (
    "status IN ('held', 'confirmed', 'expired', 'denied', 'cancelled', "
    "'arrived', 'fulfilled', 'no_show')"
)
_OVERLAP = """
    SELECT RAISE(ABORT, 'ex_appointments_active_overlap: the time is already taken')
    WHERE EXISTS (
        SELECT 1 FROM appointments AS other
        WHERE other.tenant_id = NEW.tenant_id
          AND other.provider_id = NEW.provider_id
          AND other.status IN ('held', 'confirmed', 'arrived')
          AND other.occupied_start < NEW.occupied_end
          AND other.occupied_end > NEW.occupied_start
          {excluding_self}
    );
"""
SQLITE_TRIGGERS = {
    "appointments_no_overlap_insert": (
        "BEFORE INSERT ON appointments",
        _OVERLAP.format(excluding_self=""),
    ),
    "appointments_no_overlap_update": (
        "BEFORE UPDATE OF status, provider_id, occupied_start, occupied_end ON appointments",
        _OVERLAP.format(excluding_self="AND other.id != NEW.id"),
    ),
}


def upgrade() -> None:
    op.create_table(
        "visit_types",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_before", sa.Integer(), nullable=False),
        sa.Column("buffer_after", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "buffer_before BETWEEN 0 AND 60 AND buffer_after BETWEEN 0 AND 60",
            name=op.f("ck_visit_types_buffers"),
        ),
        sa.CheckConstraint("minutes IN (15, 30, 45, 60)", name=op.f("ck_visit_types_minutes")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "provider_id"],
            ["providers.tenant_id", "providers.id"],
            name=op.f("fk_visit_types_tenant_id_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_visit_types_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "provider_id", "id", name=op.f("pk_visit_types")),
    )
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_per_day", sa.Integer(), nullable=True))
    _create_prompts()
    _create_waitlist()
    _add_occupied_span()
    if op.get_bind().dialect.name == "postgresql":
        _exclusion_constraint()
    else:
        for name, (when, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} WHEN NEW.{_OCCUPYING} BEGIN {body} END")


def _create_prompts() -> None:
    op.create_table(
        "booking_prompts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=True),
        sa.Column("waitlist_id", sa.String(length=64), nullable=True),
        sa.Column("options", JSONDocument, nullable=False),
        sa.Column("message_key", sa.String(length=200), nullable=False),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_booking_prompts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_prompts")),
    )
    with op.batch_alter_table("booking_prompts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_booking_prompts_appointment", ["tenant_id", "appointment_id"], unique=False
        )
        batch_op.create_index(
            "ix_booking_prompts_phone", ["tenant_id", "phone", "asked_at"], unique=False
        )
        batch_op.create_index(
            "uq_booking_prompts_message_key", ["tenant_id", "message_key"], unique=True
        )


def _create_waitlist() -> None:
    op.create_table(
        "waitlist",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=True),
        sa.Column("earliest", UTCDateTime(), nullable=False),
        sa.Column("latest", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "status IN ('waiting', 'booked', 'removed')", name=op.f("ck_waitlist_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_waitlist_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist")),
    )
    with op.batch_alter_table("waitlist", schema=None) as batch_op:
        batch_op.create_index(
            "ix_waitlist_waiting", ["tenant_id", "status", "created_at"], unique=False
        )
    op.create_table(
        "waitlist_openings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("slot_start", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'claimed', 'closed')", name=op.f("ck_waitlist_openings_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_waitlist_openings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_openings")),
    )
    with op.batch_alter_table("waitlist_openings", schema=None) as batch_op:
        batch_op.create_index(
            "uq_waitlist_openings_open",
            ["tenant_id", "provider_id", "slot_start"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )


def _add_occupied_span() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visit_type_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("occupied_start", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("occupied_end", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", UTCDateTime(), nullable=True))
        batch_op.drop_constraint("status", type_="check")
        batch_op.create_check_constraint("status", sa.text(_NEW_STATUSES))
    # Appointments made before visit types occupy exactly their slot.
    op.execute("UPDATE appointments SET occupied_start = slot_start, occupied_end = slot_end")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.alter_column("occupied_start", existing_type=UTCDateTime(), nullable=False)
        batch_op.alter_column("occupied_end", existing_type=UTCDateTime(), nullable=False)
        batch_op.create_check_constraint(
            "occupied_ordered", sa.text("occupied_start < occupied_end")
        )
        batch_op.drop_index(
            "uq_appointments_active_slot",
            postgresql_where=sa.text(_ACTIVE),
            sqlite_where=sa.text(_ACTIVE),
        )
        batch_op.create_index(
            "ix_appointments_provider_occupied",
            ["tenant_id", "provider_id", "occupied_start"],
            unique=False,
        )


def _exclusion_constraint() -> None:
    # Trusted since PostgreSQL 13: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_active_overlap "
        "EXCLUDE USING gist (tenant_id WITH =, provider_id WITH =, "
        "tstzrange(occupied_start, occupied_end, '[)') WITH &&) "
        f"WHERE ({_OCCUPYING})"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_active_overlap")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_appointments_provider_occupied")
        batch_op.create_index(
            "uq_appointments_active_slot",
            ["tenant_id", "provider_id", "slot_start"],
            unique=True,
            postgresql_where=sa.text(_ACTIVE),
            sqlite_where=sa.text(_ACTIVE),
        )
        batch_op.drop_constraint("occupied_ordered", type_="check")
        batch_op.drop_constraint("status", type_="check")
        batch_op.create_check_constraint("status", sa.text(_OLD_STATUSES))
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("occupied_end")
        batch_op.drop_column("occupied_start")
        batch_op.drop_column("visit_type_id")
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.drop_column("max_per_day")
    op.drop_table("waitlist_openings")
    op.drop_table("waitlist")
    op.drop_table("booking_prompts")
    op.drop_table("visit_types")
