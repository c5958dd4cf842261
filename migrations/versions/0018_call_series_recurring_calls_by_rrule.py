"""call series: recurring calls by RRULE (a series row per recurrence, calls.series_id)

Revision ID: 0018
Revises: 0013

Existing calls belong to no series (series_id NULL); nothing is rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from caretime.db import JSONDocument, UTCDateTime

revision: str = "0018"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_series",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("given_tz", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=64), server_default="", nullable=False),
        sa.Column("allow_duplicate", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("script", sa.Text(), nullable=True),
        sa.Column("variables", JSONDocument, nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("retry_delay_seconds", sa.Integer(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("dtstart", sa.String(length=16), nullable=False),
        sa.Column("next_local", sa.String(length=16), nullable=True),
        sa.Column("next_at", UTCDateTime(), nullable=True),
        sa.Column("current_call_id", sa.String(length=64), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_call_series_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_series")),
    )
    with op.batch_alter_table("call_series", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_call_series_tenant_id_status_id"),
            ["tenant_id", "status", "id"],
            unique=False,
        )

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_calls_tenant_id_series_id_scheduled_at"),
            ["tenant_id", "series_id", "scheduled_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_tenant_id_series_id_scheduled_at"))
        batch_op.drop_column("series_id")

    with op.batch_alter_table("call_series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_series_tenant_id_status_id"))

    op.drop_table("call_series")
