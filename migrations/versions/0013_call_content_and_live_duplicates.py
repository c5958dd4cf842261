"""calls: purpose, script and variables; at most one live call per number and purpose

Revision ID: 0013
Revises: 0007

Calls that are already live twice for one number (allowed until now) keep ringing: all but
the oldest are marked allow_duplicate, so the new partial unique index can be built.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from caretime.db import JSONDocument

revision: str = "0013"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('scheduled', 'dispatching', 'ringing', 'in_progress')"
LIVE_PREDICATE = sa.text(f"NOT allow_duplicate AND {LIVE}")


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "allow_duplicate", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("script", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("variables", JSONDocument, nullable=True))
    op.execute(
        f"""
        UPDATE calls SET allow_duplicate = true
        WHERE {LIVE} AND id NOT IN (
            SELECT MIN(id) FROM calls WHERE {LIVE} GROUP BY tenant_id, phone_e164
        )
        """
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            "uq_calls_live_per_purpose",
            ["tenant_id", "phone_e164", "purpose"],
            unique=True,
            postgresql_where=LIVE_PREDICATE,
            sqlite_where=LIVE_PREDICATE,
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("uq_calls_live_per_purpose")
        batch_op.drop_column("variables")
        batch_op.drop_column("script")
        batch_op.drop_column("allow_duplicate")
        batch_op.drop_column("purpose")
