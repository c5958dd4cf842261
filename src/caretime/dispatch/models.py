"""The jobs table: every timer and background action is a row here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base

ACTIVE_STATUSES = ("queued", "running")
# Dedupe keys are unique among live jobs only; jobs without a key stay out of the index.
DEDUPE_PREDICATE = text("dedupe_key IS NOT NULL AND status IN ('queued', 'running')")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Due work, in claim order: only queued rows are in this index, so a claim reads
        # exactly the rows it takes, however long the queue and the history.
        Index(
            "ix_jobs_due",
            "run_at",
            "priority",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # A finished job frees its key.
        Index(
            "uq_jobs_dedupe_key_active",
            "dedupe_key",
            unique=True,
            postgresql_where=DEDUPE_PREDICATE,
            sqlite_where=DEDUPE_PREDICATE,
        ),
        Index(
            "ix_jobs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # The dead-letter view. Every index here is partial on a status: a job changes status
        # twice, and history (done rows) should cost nothing but its primary key.
        Index(
            "ix_jobs_failed",
            "id",
            postgresql_where=text("status = 'failed'"),
            sqlite_where=text("status = 'failed'"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    run_at: Mapped[datetime]
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    dedupe_key: Mapped[str | None] = mapped_column(String(300))
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class DispatchWorker(Base):
    """One row per live worker loop, refreshed by its heartbeat: readiness and operators read
    it to tell a quiet queue from a dead worker fleet. A graceful stop deletes the row."""

    __tablename__ = "dispatch_workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    concurrency: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
