"""Booking tables: providers, their availability rules, and appointments (held or booked slots)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    column,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base, JSONDocument
from caretime.repository import TenantOwned

ACTIVE_STATUSES = ("held", "confirmed")
# Statuses whose visit holds the provider's time: active ones, and a patient who is there.
OCCUPYING_STATUSES = ("held", "confirmed", "arrived")
APPOINTMENT_STATUSES = (
    "held",
    "confirmed",
    "expired",
    "denied",
    "cancelled",
    "arrived",
    "fulfilled",
    "no_show",
)
RULE_KINDS = ("weekly", "add", "remove")
_OCCUPYING = text("status IN ('held', 'confirmed', 'arrived')")


class Provider(TenantOwned, Base):
    """A clinician; `id` is the caller's opaque string, unique within the tenant."""

    __tablename__ = "providers"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tz: Mapped[str] = mapped_column(String(64))
    # At most this many active appointments per local date (None: no limit).
    max_per_day: Mapped[int | None]
    created_at: Mapped[datetime]


class PlaceVersion(TenantOwned, Base):
    """A number the database moves on at every write to what a reservation reads about a
    provider's place: the provider, its rules, its visit types (migration 0024's triggers;
    docs/booking.md, "Reserving"; the tenant's webhook endpoints have their own number,
    webhooks.models.EndpointVersion). Kept when its provider is deleted (no foreign key to
    it), so a provider made again never goes back to a number already read."""

    __tablename__ = "place_versions"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int]


class VisitType(TenantOwned, Base):
    """A kind of visit a provider offers: its length and the free time it needs around it."""

    __tablename__ = "visit_types"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    minutes: Mapped[int]
    buffer_before: Mapped[int]
    buffer_after: Mapped[int]
    created_at: Mapped[datetime]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "provider_id"],
            ["providers.tenant_id", "providers.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("minutes IN (15, 30, 45, 60)", name="minutes"),
        CheckConstraint(
            "buffer_before BETWEEN 0 AND 60 AND buffer_after BETWEEN 0 AND 60", name="buffers"
        ),
    )


class AvailabilityRule(TenantOwned, Base):
    """One span of a provider's local wall-clock time (minutes after local midnight).

    `weekly` rows repeat on `weekdays` (bit 0 = Monday) from `valid_from` until `valid_until`;
    `add` and `remove` rows apply to one `day`. Dated rows are kept normalised per date (adds
    merged, removes merged, the two disjoint), so the effective day is
    (weekly ∪ add) − remove whatever order they were submitted in.
    """

    __tablename__ = "availability"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))
    day: Mapped[date | None] = mapped_column(Date)
    weekdays: Mapped[int] = mapped_column(Integer, default=0)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    start_minute: Mapped[int]
    end_minute: Mapped[int]
    created_at: Mapped[datetime]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "provider_id"],
            ["providers.tenant_id", "providers.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("kind IN ('weekly', 'add', 'remove')", name="kind"),
        CheckConstraint("start_minute >= 0 AND end_minute <= 1440", name="within_day"),
        CheckConstraint("start_minute < end_minute", name="ordered"),
        Index(None, "tenant_id", "provider_id", "day"),
    )


class Appointment(TenantOwned, Base):
    """A patient's hold on (then booking of) a visit with one provider. Status vocabulary:
    held → confirmed | expired | cancelled | denied; confirmed → cancelled; and the visit's
    outcome: confirmed → arrived | fulfilled | no_show, arrived → fulfilled,
    no_show → arrived (a late arrival). See booking.outcomes."""

    __tablename__ = "appointments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(128))
    client_id: Mapped[str] = mapped_column(String(200))
    slot_start: Mapped[datetime]
    slot_end: Mapped[datetime]
    visit_type_id: Mapped[str | None] = mapped_column(String(128))
    # The visit plus its buffers: what no other active appointment of the provider may overlap.
    occupied_start: Mapped[datetime]
    occupied_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    hold_expires_at: Mapped[datetime]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # E.164, when the patient gave one: reminders, notices and SMS questions go to it.
    patient_phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    arrived_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "provider_id"],
            ["providers.tenant_id", "providers.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "status IN ('held', 'confirmed', 'expired', 'denied', 'cancelled', "
            "'arrived', 'fulfilled', 'no_show')",
            name="status",
        ),
        CheckConstraint("occupied_start < occupied_end", name="occupied_ordered"),
        # THE guarantee: the occupied spans of a provider's occupying (held, confirmed or
        # arrived) appointments never overlap. PostgreSQL: this exclusion constraint. SQLite: two
        # triggers (migration 0016) that refuse an overlapping write under its single writer.
        # A hold past its deadline still counts until something marks it expired, so
        # reserve() expires stale holds in the way in its own transaction first.
        ExcludeConstraint(
            (column("tenant_id"), "="),
            (column("provider_id"), "="),
            (func.tstzrange(column("occupied_start"), column("occupied_end"), "[)"), "&&"),
            name="ex_appointments_active_overlap",
            using="gist",
            where=_OCCUPYING,
        ).ddl_if(dialect="postgresql"),
        Index("ix_appointments_provider_slot", "tenant_id", "provider_id", "slot_start"),
        Index("ix_appointments_provider_occupied", "tenant_id", "provider_id", "occupied_start"),
        # Holds by deadline, for the minute's expiry sweep (booking.expire_holds).
        Index(
            "ix_appointments_held_deadline",
            "tenant_id",
            "hold_expires_at",
            postgresql_where=text("status = 'held'"),
            sqlite_where=text("status = 'held'"),
        ),
        Index("uq_appointments_idempotency_key", "tenant_id", "idempotency_key", unique=True),
        Index("ix_appointments_patient_phone", "tenant_id", "patient_phone"),
    )


class BookingPrompt(TenantOwned, Base):
    """A question booking texted a patient and the answers it expects: confirm a hold, a
    reminder (YES / NO / R), numbered times to move to, "cancel?", a lapsed slot or a freed
    one (waitlist) offered again. A reply answers the newest open prompt to that phone."""

    __tablename__ = "booking_prompts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    appointment_id: Mapped[str | None] = mapped_column(String(64))
    waitlist_id: Mapped[str | None] = mapped_column(String(64))
    # Times offered, in order: [{"provider_id", "slot_start"}]
    options: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    # The outbound message's idempotency key: asking twice for the same reason is one prompt.
    message_key: Mapped[str] = mapped_column(String(200))
    asked_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_booking_prompts_phone", "tenant_id", "phone", "asked_at"),
        Index("uq_booking_prompts_message_key", "tenant_id", "message_key", unique=True),
        Index("ix_booking_prompts_appointment", "tenant_id", "appointment_id"),
    )


class WaitlistEntry(TenantOwned, Base):
    """A patient waiting for an earlier time: offered freed slots in join order."""

    __tablename__ = "waitlist"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(128))  # None: any provider
    earliest: Mapped[datetime]
    latest: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # waiting | booked | removed
    appointment_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'booked', 'removed')", name="status"),
        Index("ix_waitlist_waiting", "tenant_id", "status", "created_at"),
    )


class WaitlistOpening(TenantOwned, Base):
    """A freed time offered to the waitlist; the first YES claims it with one conditional
    UPDATE (status open → claimed)."""

    __tablename__ = "waitlist_openings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(128))
    slot_start: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # open | claimed | closed
    wave: Mapped[int]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("status IN ('open', 'claimed', 'closed')", name="status"),
        # One open offer of a time at once: a second freeing of it joins the first.
        Index(
            "uq_waitlist_openings_open",
            "tenant_id",
            "provider_id",
            "slot_start",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )
