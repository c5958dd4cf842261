"""Tenant and API-key rules: creation, hashing, authentication, revocation, policy updates."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from caretime import driver_reads
from caretime.db import locking
from caretime.errors import CaretimeError, Conflict, InvalidInput, NotFound, Unauthorized
from caretime.fielderrors import field_errors, where
from caretime.ids import new_id
from caretime.repository import TenantRepository
from caretime.tenancy.models import ApiKey, Tenant
from caretime.tenancy.policy import TenantPolicy, merge_policy

KEY_PREFIX = "ct_"


class ApiKeyRepository(TenantRepository[ApiKey]):
    model = ApiKey


def hash_key(plaintext: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is safe (no dictionary to attack).
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_tenant(
    session: AsyncSession, name: str, *, now: datetime, tenant_id: str | None = None
) -> Tenant:
    if await find_tenant(session, name) is not None:
        raise Conflict(f"a tenant named {name!r} already exists")
    tenant = Tenant(id=tenant_id or new_id("ten"), name=name, policy={}, created_at=now)
    session.add(tenant)
    await session.flush()
    return tenant


async def find_tenant(session: AsyncSession, name: str) -> Tenant | None:
    result = await session.execute(select(Tenant).where(Tenant.name == name))
    return result.scalars().first()


async def require_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await find_tenant(session, name)
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


async def create_key(
    session: AsyncSession,
    tenant: Tenant,
    *,
    now: datetime,
    name: str = "",
    plaintext: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key's hash and return the key once; it cannot be recovered later."""
    plaintext = plaintext or generate_key()
    key = ApiKey(
        id=new_id("key"),
        name=name,
        prefix=plaintext[:10],
        key_hash=hash_key(plaintext),
        created_at=now,
    )
    ApiKeyRepository(session, tenant.id).add(key)
    await session.flush()
    return key, plaintext


@dataclass(frozen=True)
class KeyCheck:
    """What one request needs to know about the key it came with, read in one statement."""

    key_id: str
    tenant_id: str
    tenant_name: str
    policy_version: int
    last_used_at: datetime | None


_KEY_CHECK = (
    select(
        ApiKey.id,
        ApiKey.tenant_id,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        Tenant.name,
        Tenant.policy_version,
    )
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


async def check_key(connection: AsyncConnection, key_hash: str) -> KeyCheck:
    """The key (by its hash) and its tenant in one indexed SELECT: read when this process has
    not checked the key within CARETIME_KEY_CACHE_SECONDS (`keycache`)."""
    # On a connection, not through the ORM: six columns need no entity loading.
    row = (await connection.execute(_KEY_CHECK, {"key_hash": key_hash})).first()
    if row is None or row.revoked_at is not None:
        raise key_refused(revoked=row is not None)
    key_id, tenant_id, _, last_used_at, name, version = row
    return KeyCheck(key_id, tenant_id, name, version, last_used_at)


# Typed as any row, as the drivers' readers take statements (a two-column Select is not one).
_POLICY_VERSION: Select[*tuple[Any, ...]] = (
    select(ApiKey.revoked_at, Tenant.policy_version)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.id == bindparam("key_id"))
)


async def policy_version(engine: AsyncEngine, key_id: str) -> int:
    """The policy version of the tenant of a key checked a moment ago (served from the key
    cache), by the key's primary key: the one statement also re-reads the key's revocation,
    so a route that reads the policy refuses a revoked key at once at no extra cost. Sent by
    the driver itself (asyncpg; sqlite3 in one hop) on a connection of `engine`'s pool
    borrowed for it alone: every request of a route that uses the policy runs it, and a
    SQLAlchemy Connection around it cost more CPU than the statement (docs/benchmarks.md,
    "calls4")."""
    rows = await driver_reads.fetch_all(engine, _POLICY_VERSION, {"key_id": key_id})
    row = rows[0] if rows else None
    if row is None or row[0] is not None:  # unknown (deleted), or revoked
        raise key_refused(revoked=row is not None)
    version_read: int = row[1]
    return version_read


# A key as a route's own statement read it again beside its rows (auth.PolicyReadWith).
KeyState = Literal["valid", "revoked", "unknown"]


def key_refused(*, revoked: bool) -> Unauthorized:
    """The 401 for a key found revoked, or not found at all (unknown, or deleted)."""
    return Unauthorized("this API key has been revoked" if revoked else "unknown API key")


async def authenticate(session: AsyncSession, plaintext: str) -> tuple[Tenant, ApiKey]:
    result = await session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == hash_key(plaintext))
    )
    row = result.first()
    if row is None or row[0].revoked_at is not None:
        raise key_refused(revoked=row is not None)
    key, tenant = row
    return tenant, key


async def list_keys(session: AsyncSession, tenant_id: str) -> Sequence[ApiKey]:
    keys = ApiKeyRepository(session, tenant_id)
    return await keys.all(keys.select().order_by(ApiKey.created_at))


async def revoke_key(
    session: AsyncSession, tenant_id: str, key_ref: str, *, now: datetime
) -> ApiKey:
    """Revoke by id or by the displayed prefix; revoking twice keeps the first revocation time."""
    keys = ApiKeyRepository(session, tenant_id)
    key = await keys.first(keys.select().where((ApiKey.id == key_ref) | (ApiKey.prefix == key_ref)))
    if key is None:
        raise NotFound(f"no API key {key_ref!r} for this tenant")
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()
    return key


class StoredPolicyInvalid(CaretimeError):
    """A policy stored before today's checks existed: reported on use, never a crash."""

    status = 422
    problem = "stored-policy-invalid"
    title = "This tenant's stored policy is no longer valid"


def policy_of(tenant: Tenant) -> TenantPolicy:
    return parse_policy(tenant.policy)


def parse_policy(document: dict[str, Any] | None) -> TenantPolicy:
    try:
        return TenantPolicy.model_validate(document or {})
    except ValidationError as exc:
        errors = field_errors(exc.errors(), prefix=("policy",))
        raise StoredPolicyInvalid(
            f"the stored policy has invalid values ({where(errors)}); correct them with "
            "PATCH /tenants/me/policy",
            errors=errors,
        ) from exc


def policy_document(tenant: Tenant) -> dict[str, Any]:
    """The tenant's policy with every default spelled out (even if a stored value is invalid),
    so that a merge patch keeps every key it does not name."""
    defaults = TenantPolicy().model_dump(mode="json")
    return merge_policy(defaults, tenant.policy or {})


async def update_policy(
    session: AsyncSession, tenant_id: str, patch: dict[str, Any]
) -> TenantPolicy:
    """Apply a JSON merge patch to the tenant's policy; the result must validate as a whole.
    The row is locked (two patches at once each keep the other's keys) and its version
    bumped, so every process parses the new policy for its next request."""
    tenant = await session.scalar(locking(select(Tenant).where(Tenant.id == tenant_id)))
    if tenant is None:
        raise NotFound("this tenant no longer exists")
    merged = merge_policy(policy_document(tenant), patch)
    try:
        policy = TenantPolicy.model_validate(merged)
    except ValidationError as exc:
        errors = field_errors(exc.errors(), prefix=("body",))
        raise InvalidInput("the policy is not valid", errors=errors) from exc
    tenant.policy = policy.model_dump(mode="json", exclude_defaults=True)
    tenant.policy_version = Tenant.policy_version + 1
    await session.flush()
    return policy


async def ensure_bootstrap_key(
    session: AsyncSession, tenant_name: str, plaintext: str, *, now: datetime
) -> Tenant:
    """Make CARETIME_API_KEY a valid key of the default tenant (demos and tests)."""
    tenant = await find_tenant(session, tenant_name)
    if tenant is None:
        tenant = await create_tenant(session, tenant_name, now=now)
    existing = await session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
    if existing.scalars().first() is None:
        await create_key(session, tenant, now=now, name="bootstrap", plaintext=plaintext)
    return tenant
