"""calls: purpose, script and variables; at most one live call per number and purpose;
consent history; the AI voice agent (per-tenant endpoint, message context, dispositions)

Revision ID: 0013
Revises: 0016 (the chain is ..., 0010, 0016, 0013: issues landed in that order)

Calls that are already live twice for one number (allowed until now) keep ringing: all but
the oldest are marked allow_duplicate, so the new partial unique index can be built. The
consent history starts with each number's current consent state, as replies set it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from caretime.db import JSONDocument, UTCDateTime

revision: str = "0013"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('scheduled', 'dispatching', 'ringing', 'in_progress')"
LIVE_PREDICATE = sa.text(f"NOT allow_duplicate AND {LIVE}")


def upgrade() -> None:
    _calls_upgrade()
    _consent_upgrade()
    _agent_upgrade()


def _calls_upgrade() -> None:
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
            SELECT MIN(id) FROM calls WHERE {LIVE} GROUP BY contact_id
        )
        """
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            "uq_calls_live_per_purpose",
            ["contact_id", "purpose"],
            unique=True,
            postgresql_where=LIVE_PREDICATE,
            sqlite_where=LIVE_PREDICATE,
        )


def _consent_upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("related_id", sa.String(length=64), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_consent_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_changes")),
    )
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_changes_tenant_id_phone_id"), ["tenant_id", "phone", "id"]
        )
    with op.batch_alter_table("message_opt_outs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), server_default="reply", nullable=False)
        )
    op.execute(
        """
        INSERT INTO consent_changes
            (tenant_id, phone, channel, opted_out, source, keyword, message_id, changed_at)
        SELECT tenant_id, phone, channel, opted_out, 'reply', NULLIF(keyword, ''),
               source_message_id, changed_at
        FROM message_opt_outs ORDER BY changed_at
        """
    )


def _agent_upgrade() -> None:
    op.create_table(
        "voice_agents",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voice_agents_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_voice_agents")),
    )
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context", JSONDocument, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("context")
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_column("summary")
        batch_op.drop_column("disposition")
    op.drop_table("voice_agents")
    with op.batch_alter_table("message_opt_outs", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_changes_tenant_id_phone_id"))
    op.drop_table("consent_changes")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("uq_calls_live_per_purpose")
        batch_op.drop_column("variables")
        batch_op.drop_column("script")
        batch_op.drop_column("allow_duplicate")
        batch_op.drop_column("purpose")
