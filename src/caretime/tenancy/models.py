"""Tenants (organisations) and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from caretime.db import Base
from caretime.repository import TenantOwned


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Bumped with every change of `policy`: processes cache the parsed policy per version.
    policy_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime]


class ApiKey(TenantOwned, Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "tenant_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class DashboardSession(TenantOwned, Base):
    """A signed-in dashboard viewer. The cookie holds a random token whose hash is this row's
    id, never the API key: deleting the row (sign-out) or revoking the key ends it at once."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (Index(None, "api_key_id"), Index(None, "expires_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_keys.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class TenantNumber(TenantOwned, Base):
    """A phone number a tenant sends from. A number belongs to one tenant (the primary key
    says so), so a reply to it (Twilio's `To`) names its tenant. `position` 0 is the number
    messages go out from."""

    __tablename__ = "tenant_numbers"
    __table_args__ = (Index(None, "tenant_id", "position"),)

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int]
    created_at: Mapped[datetime]
