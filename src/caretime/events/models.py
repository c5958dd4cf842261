"""The events table: one row per change, written in the change's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base
from caretime.repository import TenantOwned


class Event(TenantOwned, Base):
    __tablename__ = "events"
    __table_args__ = (
        Index(None, "tenant_id", "seq"),
        Index(None, "tenant_id", "subject_kind", "subject_id", "seq"),
        Index(None, "tenant_id", "type", "seq"),
        Index(None, "tenant_id", "txid", "seq"),
    )

    # The feed's order: assigned at insert, increasing (ids are time-ordered only to the
    # millisecond, and two changes of one transaction often share one).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The writing transaction's id on PostgreSQL (a column default there; 0 on SQLite, whose
    # writers commit one at a time in seq order). The feed orders by (txid, seq) and shows
    # only transactions older than every one still running: see caretime.events.feed.
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(120))
