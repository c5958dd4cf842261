"""shift offers read their message's status from messaging instead of keeping a copy

Revision ID: 0007
Revises: 0004 (the chain is 0003, 0005, 0006, 0004: issues landed in that order)

The copy (shift_offers.message_status, and a "message_status" row in shift_events per
change) was written by a listener in every hand-over transaction. The progress counts and
the timeline now read messages and message_events through shift_offers.message_id, which
the fan-out sets when it creates the offer (it was set by the listener before, so offers
whose message never changed status get it here). Downgrading restores the status column
from messages; the timeline rows it would have written are not recreated.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE shift_offers SET message_id = (
            SELECT messages.id FROM messages
            WHERE messages.tenant_id = shift_offers.tenant_id
              AND messages.related_kind = 'shifts.offer'
              AND messages.related_id = shift_offers.id
        )
        WHERE message_id IS NULL
        """
    )
    op.execute("DELETE FROM shift_events WHERE kind = 'message_status'")
    with op.batch_alter_table("shift_offers", schema=None) as batch_op:
        batch_op.drop_column("message_status")


def downgrade() -> None:
    with op.batch_alter_table("shift_offers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "message_status", sa.String(length=16), nullable=False, server_default="queued"
            )
        )
    op.execute(
        """
        UPDATE shift_offers SET message_status = COALESCE(
            (SELECT messages.status FROM messages WHERE messages.id = shift_offers.message_id),
            'queued'
        )
        """
    )
    with op.batch_alter_table("shift_offers", schema=None) as batch_op:
        batch_op.alter_column("message_status", server_default=None)
