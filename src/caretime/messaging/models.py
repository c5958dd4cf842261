"""Messaging tables: messages (both directions), raw provider events, opt-out state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base, JSONDocument
from caretime.repository import TenantOwned


class Message(TenantOwned, Base):
    """One SMS or call, outbound (something we send) or inbound (a reply we received)."""

    __tablename__ = "messages"
    __table_args__ = (
        # Sending twice with the same key sends once: the database guarantees it.
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(None, "tenant_id", "to_phone", "created_at"),
        Index(None, "tenant_id", "related_kind", "related_id"),
        Index(None, "provider", "provider_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(8))
    to_phone: Mapped[str] = mapped_column(String(32))
    from_phone: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    related_kind: Mapped[str | None] = mapped_column(String(64))
    related_id: Mapped[str | None] = mapped_column(String(200))
    intent: Mapped[str | None] = mapped_column(String(16))
    route_action: Mapped[str | None] = mapped_column(String(32))
    suppression_reason: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    status_changed_at: Mapped[datetime]
    # What a provider that takes structured requests (an AI voice agent) is told beside the
    # body: the call it is for, purpose, variables, time zone, until when it may talk.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    # Committed just before the provider request: a queued message that has it but no
    # provider id was in flight when its worker stopped, and may have been sent.
    handover_started_at: Mapped[datetime | None]
    # Such a message was sent again (tenant policy messaging.in_doubt = resend) or held as
    # `unknown` (hold): either way the recipient may have it twice, or may have it once.
    in_doubt: Mapped[bool] = mapped_column(default=False, server_default=false())


@dataclass(slots=True)
class MessageRow:
    """A message's columns as plain attributes, for batch jobs that read and write hundreds
    of messages with Core statements: an ORM object costs its loading, instrumented reads,
    and a `set_committed_value` per attribute the job changes. Fields in column order."""

    id: str
    direction: str
    channel: str
    to_phone: str
    from_phone: str | None
    body: str
    status: str
    provider: str | None
    provider_id: str | None
    idempotency_key: str | None
    related_kind: str | None
    related_id: str | None
    intent: str | None
    route_action: str | None
    suppression_reason: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    status_changed_at: datetime
    context: dict[str, Any] | None
    handover_started_at: datetime | None
    in_doubt: bool
    tenant_id: str


# A message as the status tracking takes it: the ORM object or a batch job's row.
TrackedMessage = Message | MessageRow


class MessageEvent(TenantOwned, Base):
    """A raw provider event (callback, poll result, simulated step), kept in arrival order."""

    __tablename__ = "message_events"
    __table_args__ = (Index(None, "message_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("messages.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(16))
    provider_status: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))
    applied: Mapped[bool]
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class OptOut(TenantOwned, Base):
    """Consent state of one number on one channel; no row means never opted out."""

    __tablename__ = "message_opt_outs"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    opted_out: Mapped[bool]
    keyword: Mapped[str] = mapped_column(String(32))
    source_message_id: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime]
    # How the latest statement was given (see ConsentChange.source).
    source: Mapped[str] = mapped_column(String(16), default="reply", server_default="reply")


class ConsentChange(TenantOwned, Base):
    """One statement of a number's consent on one channel (a STOP or START reply, an opt-out
    given by other means through the API, an agent's report), kept as the audit of consent."""

    __tablename__ = "consent_changes"
    __table_args__ = (Index(None, "tenant_id", "phone", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    phone: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    opted_out: Mapped[bool]
    # How it was given: "reply" (a keyword texted in), "api", "agent" (a voice agent's report).
    source: Mapped[str] = mapped_column(String(16))
    keyword: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(64))
    related_id: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime]


class AgentEndpoint(TenantOwned, Base):
    """Where a tenant's AI voice agent takes call requests, and the secret that signs them
    (Standard Webhooks). Kept in clear: signing needs it; it is shown to the tenant once."""

    __tablename__ = "voice_agents"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
