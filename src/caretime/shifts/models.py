"""Shift-fill tables: caregivers and their roles, shifts, fan-outs, offers and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base, JSONDocument
from caretime.repository import TenantOwned

SHIFT_STATUSES = ("open", "filled", "cancelled", "expired")


def tenant_key() -> Mapped[str]:
    """The tenant half of a composite primary key (callers' ids repeat across tenants)."""
    return mapped_column(String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)


class Caregiver(TenantOwned, Base):
    __tablename__ = "caregivers"
    __table_args__ = (Index(None, "tenant_id", "phone"),)

    tenant_id: Mapped[str] = tenant_key()
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    # The zone quiet hours are read in, when given; else inferred from the phone.
    tz: Mapped[str | None] = mapped_column(String(64))
    # 1 = preferred: a ladder round may target tiers, so preferred caregivers hear first.
    tier: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str] | None] = mapped_column(JSONDocument)
    # Not offered a shift that would take their filled hours in its week past this.
    max_weekly_hours: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CaregiverRole(TenantOwned, Base):
    """One row per (caregiver, role), so "who holds role X" is an indexed join, not a JSON scan."""

    __tablename__ = "caregiver_roles"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "caregiver_id"],
            ["caregivers.tenant_id", "caregivers.id"],
            ondelete="CASCADE",
        ),
        Index(None, "tenant_id", "role"),
    )

    tenant_id: Mapped[str] = tenant_key()
    caregiver_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class Shift(TenantOwned, Base):
    __tablename__ = "shifts"
    __table_args__ = (
        Index(None, "tenant_id", "assigned_caregiver_id", "start_time"),
        Index(None, "tenant_id", "status", "start_time"),
    )

    tenant_id: Mapped[str] = tenant_key()
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    role_required: Mapped[str] = mapped_column(String(32))
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    tz: Mapped[str] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(300))
    notes: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    assigned_caregiver_id: Mapped[str | None] = mapped_column(String(200))
    filled_at: Mapped[datetime | None]
    # Set when a filled shift changed: the assignee must reply YES by then or it is released.
    reconfirm_by: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FanOut(TenantOwned, Base):
    """At most one per shift: the primary key is the guarantee that a fan-out starts once."""

    __tablename__ = "shift_fanouts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shift_id"], ["shifts.tenant_id", "shifts.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[str] = tenant_key()
    shift_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The tenant's ladder when the fan-out started: later policy edits do not rewrite it.
    ladder: Mapped[dict[str, Any]]
    # 1 for the first fan-out; each re-fill after a drop starts generation + 1, whose offers
    # and messages are new (their keys carry the generation).
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # 0 while stopped: the shift was dropped and waits for a re-fill (manual policy).
    current_round: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime]


class Offer(TenantOwned, Base):
    """One message offering a shift to one caregiver in one round of one fan-out generation;
    unique per (shift, caregiver, generation, round)."""

    __tablename__ = "shift_offers"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "shift_id",
            "caregiver_id",
            "generation",
            "round",
            name="uq_shift_offers_once",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "shift_id"], ["shifts.tenant_id", "shifts.id"], ondelete="CASCADE"
        ),
        Index(None, "tenant_id", "caregiver_id", "sent_at"),
    )

    tenant_id: Mapped[str] = tenant_key()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shift_id: Mapped[str] = mapped_column(String(200))
    caregiver_id: Mapped[str] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    round: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(8))
    sent_at: Mapped[datetime]
    # Its message in messaging (which holds the status): the id is chosen with the offer.
    message_id: Mapped[str | None] = mapped_column(String(64))
    # Inside the caregiver's quiet hours the message waits until then (job shifts.send_held).
    held_until: Mapped[datetime | None]
    # What quiet hours did to this offer, in words: "held until 08:00 local: quiet hours".
    quiet_note: Mapped[str | None] = mapped_column(String(120))
    reply_intent: Mapped[str | None] = mapped_column(String(16))
    replied_at: Mapped[datetime | None]


class ShiftEvent(TenantOwned, Base):
    """The audit trail of a shift beyond its offers and their messages: replies, assignment,
    cancellation, expiry."""

    __tablename__ = "shift_events"
    __table_args__ = (Index(None, "tenant_id", "shift_id", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    shift_id: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    caregiver_id: Mapped[str | None] = mapped_column(String(200))
    offer_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
