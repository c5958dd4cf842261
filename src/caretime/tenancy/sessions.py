"""Dashboard sessions: a sign-in with an API key, kept as a row so that it can be ended.

The viewer's cookie carries a random token and the row stores only its hash, so neither the
cookie nor the database holds anything that works as an API key. Signing out deletes the
row; revoking the key ends every session opened with it on their next request.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.errors import Unauthorized
from caretime.tenancy.models import ApiKey, DashboardSession, Tenant
from caretime.tenancy.service import hash_key

SESSION_LIFETIME = timedelta(hours=12)


async def open_session(session: AsyncSession, key: ApiKey, *, now: datetime) -> str:
    """Record a sign-in with `key`; returns the token for the cookie (shown once)."""
    await session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(
        DashboardSession(
            id=hash_key(token),
            tenant_id=key.tenant_id,
            api_key_id=key.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    await session.flush()
    return token


async def resume_session(
    session: AsyncSession, token: str, *, now: datetime
) -> tuple[Tenant, ApiKey]:
    """The tenant and key behind a live session, or Unauthorized."""
    result = await session.execute(
        select(Tenant, ApiKey)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .join(DashboardSession, DashboardSession.api_key_id == ApiKey.id)
        .where(DashboardSession.id == hash_key(token), DashboardSession.expires_at > now)
    )
    row = result.first()
    if row is None:
        raise Unauthorized("this session has ended: sign in again")
    tenant, key = row
    if key.revoked_at is not None:
        raise Unauthorized("the API key of this session has been revoked")
    return tenant, key


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(DashboardSession).where(DashboardSession.id == hash_key(token)))
