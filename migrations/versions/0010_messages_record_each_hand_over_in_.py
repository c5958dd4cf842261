"""messages record each hand-over: in-flight mark and in-doubt flag

Revision ID: 0010
Revises: 0015 (the chain is ..., 0014, 0015, 0010: issues landed in that order)

`handover_started_at` is committed just before a provider request; a queued message that has
it but no provider id was in flight when its worker stopped. `in_doubt` says such a message
was sent again or held as `unknown` (tenant policy messaging.in_doubt).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from caretime.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handover_started_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("in_doubt", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("in_doubt")
        batch_op.drop_column("handover_started_at")
