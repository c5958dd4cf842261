"""tenants own the numbers they send from

Revision ID: 0009
Revises: 0012 (the chain is ..., 0008, 0012, 0009: issues landed in that order)

A reply through Twilio names the number it was sent to (`To`); the tenant that owns that
number receives it. A number belongs to one tenant: it is the primary key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from caretime.db import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_numbers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_numbers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_tenant_numbers")),
    )
    with op.batch_alter_table("tenant_numbers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tenant_numbers_tenant_id_position"), ["tenant_id", "position"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_numbers_tenant_id_position"))
    op.drop_table("tenant_numbers")
