"""appointments: held rows by deadline (a partial index), for the minute's expiry sweep,
which expires a tenant's due holds in one UPDATE instead of one job per hold

Revision ID: 0023
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELD = sa.text("status = 'held'")


def upgrade() -> None:
    op.create_index(
        "ix_appointments_held_deadline",
        "appointments",
        ["tenant_id", "hold_expires_at"],
        postgresql_where=HELD,
        sqlite_where=HELD,
    )


def downgrade() -> None:
    op.drop_index("ix_appointments_held_deadline", table_name="appointments")
