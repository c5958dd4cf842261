"""Outreach tables: contacts, batches, calls (the scheduled task) and call attempts."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base, JSONDocument
from caretime.repository import TenantOwned

# A call that has not started yet; only these may be moved, cancelled or dispatched.
PENDING = "scheduled"
STARTED = ("dispatching", "ringing", "in_progress")
FINAL = ("completed", "no_answer", "busy", "failed", "cancelled", "expired")
# A live call: one that may still ring. A tenant has at most one live call per number and
# purpose, unless the call was made with allow_duplicate: the database guarantees it.
LIVE = (PENDING, *STARTED)
# The partial unique index that allows one live call per number (contact) and purpose.
LIVE_INDEX = "uq_calls_live_per_purpose"
LIVE_PREDICATE = text(
    "NOT allow_duplicate AND status IN ('scheduled', 'dispatching', 'ringing', 'in_progress')"
)


def contact_id_for(tenant_id: str, e164: str) -> str:
    return "con_" + hashlib.sha256(f"{tenant_id}:{e164}".encode()).hexdigest()[:32]


class Contact(TenantOwned, Base):
    """A number the tenant calls. Its id is derived from (tenant, number), so a batch can
    reference contacts without reading them back."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("tenant_id", "phone_e164"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone_e164: Mapped[str] = mapped_column(String(20))
    zones: Mapped[list[str]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime]


class OutreachBatch(TenantOwned, Base):
    __tablename__ = "outreach_batches"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str] = mapped_column(String(16))
    max_attempts: Mapped[int]
    retry_delay_seconds: Mapped[int]
    total: Mapped[int]
    scheduled: Mapped[int]
    rejected: Mapped[int]
    # What the caller got back, kept only for batches sent with an Idempotency-Key.
    result: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)
    rejections: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime]


class Call(TenantOwned, Base):
    __tablename__ = "calls"
    __table_args__ = (
        # Capacity: calls per minute still to come, read once per batch.
        Index(None, "tenant_id", "status", "scheduled_minute"),
        Index(None, "tenant_id", "batch_id", "id"),
        # The contact id is derived from (tenant, number), so it stands for both: a lookup of
        # a batch's numbers probes this index once per number (bulk.probe_each; keyed by
        # tenant first, or looked up by `= ANY`, stale statistics made it a scan instead).
        Index(
            LIVE_INDEX,
            "contact_id",
            "purpose",
            unique=True,
            postgresql_where=LIVE_PREDICATE,
            sqlite_where=LIVE_PREDICATE,
        ),
        # Is any call of this batch still open? (batch.completed, checked as each call ends)
        Index(None, "tenant_id", "batch_id", "status"),
        # A series' occurrences, oldest first (GET /calls/series/{id}).
        Index(None, "tenant_id", "series_id", "scheduled_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(64))
    # The recurring series this call is an occurrence of (no foreign key: a batch writes its
    # calls before their series rows, in one transaction).
    series_id: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[str] = mapped_column(String(64), ForeignKey("contacts.id"))
    name: Mapped[str] = mapped_column(String(200))
    phone_e164: Mapped[str] = mapped_column(String(20))
    tz: Mapped[str] = mapped_column(String(64))
    zones: Mapped[list[str]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16))
    # What the call is for (a campaign or task name); "" when the caller named none.
    purpose: Mapped[str] = mapped_column(String(64), default="", server_default="")
    allow_duplicate: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # What the voice provider says or is told (None: the tenant's default for the purpose).
    script: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    scheduled_at: Mapped[datetime]
    scheduled_minute: Mapped[int] = mapped_column(BigInteger)
    pinned: Mapped[bool]
    # Bumped whenever the call is moved: a job for an older version does nothing.
    version: Mapped[int]
    attempts: Mapped[int]
    max_attempts: Mapped[int]
    retry_delay_seconds: Mapped[int]
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CallAttempt(TenantOwned, Base):
    __tablename__ = "call_attempts"
    __table_args__ = (
        UniqueConstraint("call_id", "number"),
        Index(None, "tenant_id", "contact_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), ForeignKey("calls.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(64))
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # What an AI voice agent reported: how it ended (reached, declined...) and a short
    # summary (stored, never logged).
    disposition: Mapped[str | None] = mapped_column(String(32))
    summary: Mapped[str | None] = mapped_column(Text)


class CallSeries(TenantOwned, Base):
    """Recurring calls to one number: an RRULE read in the recipient's local time. At most
    one occurrence is live at a time; the next is planned when it ends (outreach.series)."""

    __tablename__ = "call_series"
    __table_args__ = (Index(None, "tenant_id", "status", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(64))
    # No foreign key: the contact is written with the first occurrence, which may come later.
    contact_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    phone_e164: Mapped[str] = mapped_column(String(20))
    # The zone the rule is read in (the number's reported zone, or the caller's `tz`).
    tz: Mapped[str] = mapped_column(String(64))
    # The caller's `tz`, if any: occurrences are planned in that zone alone.
    given_tz: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64), default="", server_default="")
    allow_duplicate: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    script: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    # Per-series overrides of the tenant's policy (None: the tenant's value at each occurrence).
    max_attempts: Mapped[int | None]
    retry_delay_seconds: Mapped[int | None]
    rule: Mapped[str] = mapped_column(Text)
    # Local wall times in `tz`, "YYYY-MM-DDTHH:MM": the rule's start, and the next occurrence
    # not planned yet (None: the rule has no more).
    dtstart: Mapped[str] = mapped_column(String(16))
    next_local: Mapped[str | None] = mapped_column(String(16))
    next_at: Mapped[datetime | None]
    current_call_id: Mapped[str | None] = mapped_column(String(64))
    occurrences: Mapped[int]
    skipped: Mapped[int]
    # active, finished (no more occurrences, or stopped: see ended_reason), cancelled.
    status: Mapped[str] = mapped_column(String(16))
    ended_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
