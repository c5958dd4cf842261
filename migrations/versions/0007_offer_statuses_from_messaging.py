"""shift offers read their message's status from messaging instead of keeping a copy

Revision ID: 0007
Revises: 0004 (the chain is 0003, 0005, 0006, 0004: issues landed in that order)

The copy (shift_offers.message_status and message_id, and a "message_status" row in
shift_events per change) was written by a listener in every hand-over transaction. The
progress counts and the timeline now read messages and message_events, which hold the same
facts, so the copy goes. Downgrading restores the columns from messages; the timeline rows
it would have written are still read from message_events and are not recreated.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OFFER_MESSAGE = """
    FROM messages
    WHERE messages.tenant_id = shift_offers.tenant_id
      AND messages.related_kind = 'shifts.offer'
      AND messages.related_id = shift_offers.id
"""


def upgrade() -> None:
    op.execute("DELETE FROM shift_events WHERE kind = 'message_status'")
    with op.batch_alter_table("shift_offers", schema=None) as batch_op:
        batch_op.drop_column("message_status")
        batch_op.drop_column("message_id")


def downgrade() -> None:
    with op.batch_alter_table("shift_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "message_status", sa.String(length=16), nullable=False, server_default="queued"
            )
        )
    op.execute(f"UPDATE shift_offers SET message_id = (SELECT messages.id {_OFFER_MESSAGE})")
    op.execute(
        "UPDATE shift_offers SET message_status = "
        f"COALESCE((SELECT messages.status {_OFFER_MESSAGE}), 'queued')"
    )
    with op.batch_alter_table("shift_offers", schema=None) as batch_op:
        batch_op.alter_column("message_status", server_default=None)
