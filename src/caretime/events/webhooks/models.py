"""Webhook tables: endpoints, one delivery per (event, endpoint), and each attempt of one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base, JSONDocument
from caretime.repository import TenantOwned

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_PENDING = text("status = 'pending'")
_BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class WebhookEndpoint(TenantOwned, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500))
    # Patterns: exact types, `call.*`, or `*`.
    event_types: Mapped[list[str]] = mapped_column(JSONDocument)
    # Kept in clear: signing needs it. Shown to the caller once, at creation.
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Deliveries per second at most (None: only the concurrency bound).
    rate_limit: Mapped[int | None]
    # Since when every attempt failed (None after any success): 24 h of it disables.
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EndpointVersion(TenantOwned, Base):
    """A number the database moves on at every write to which of a tenant's endpoints want
    what (an endpoint added, deleted, enabled or disabled, or its event types changed:
    migration 0024's triggers), so a write prepared on the endpoints read before can check
    they are still so (booking's known places; docs/booking.md, "Reserving"). A tenant that
    never had an endpoint has no row: its number is 0."""

    __tablename__ = "endpoint_versions"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int]


class WebhookDelivery(TenantOwned, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # What is due, per endpoint; and each subject's queue, for ordering.
        Index(
            "ix_webhook_deliveries_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        Index(
            "ix_webhook_deliveries_subject",
            "endpoint_id",
            "subject",
            "event_seq",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        Index(None, "endpoint_id", "id"),
        Index(None, "event_seq"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.seq", ondelete="CASCADE"))
    # `kind:id`: deliveries of one subject to one endpoint go out in event order.
    subject: Mapped[str] = mapped_column(String(240))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WebhookAttempt(TenantOwned, Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"), Index(None, "endpoint_id", "id"))

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[int]
    attempted_at: Mapped[datetime]
    # None when no answer came (refused, timed out): `error` says why.
    status_code: Mapped[int | None]
    latency_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
