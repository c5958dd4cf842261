"""`Authorization: Bearer <key>` → the caller's tenant and policy, or a 401 problem.

A key is read (its revocation, its tenant's name and policy version, in one indexed SELECT:
`service.check_key`) when this process has not read it within CARETIME_KEY_CACHE_SECONDS;
within that, it is served from the process's key cache (`keycache.KeyCache`) without a
statement. So a key revoked on another process is refused within that bound, and at once on
the process that revoked it (`forget_key_when_committed`). A route that uses the tenant's
policy (`PolicyDep`) reads the policy version on every request (a changed policy is used by
the next request on every process); when the key came from the cache, that one statement
also re-reads the key's revocation, so such a route refuses a revoked key at once.

A key is read on a reader connection of its own (`deps.reading_first`), and the policy
version by the driver itself on a connection of the reader pool borrowed for it
(`service.policy_version`), both before the request's write transaction begins: on SQLite
the write lock is not held across the check. The key check is FastAPI's bearer security
dependency itself, with no sub-dependency (not even the request's session): FastAPI's
solving of each dependency costs a cache-hit request more than the check's own work
(docs/benchmarks.md, K2).
The parsed policy is kept per process, per tenant and version (`PolicyCache`). The key's
last use is noted in memory and written in batches (`keyuse.KeyUses`), so no request writes
for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caretime.db import after_commit
from caretime.deps import reading_first
from caretime.errors import Unauthorized
from caretime.events import set_actor
from caretime.events.actor import api_key_actor
from caretime.observability import bind_tenant
from caretime.runtime import Runtime
from caretime.tenancy.keycache import KeyCache
from caretime.tenancy.keyshape import key_shape_problem
from caretime.tenancy.keyuse import KeyUses
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.service import (
    KeyCheck,
    KeyState,
    StoredPolicyInvalid,
    check_key,
    hash_key,
    key_refused,
    parse_policy,
    policy_version,
)


@dataclass(frozen=True)
class CurrentTenant:
    """The tenant a request acts for, as its key check read it (not a database row)."""

    id: str
    name: str
    # The tenant's policy version as this request read it with its key; None when the key
    # came from the key cache (`current_policy` then reads the version itself).
    policy_version: int | None
    key_id: str


class _ApiKeyBearer(HTTPBearer):
    """The API key check as FastAPI's HTTP bearer security scheme itself (the same scheme in
    the OpenAPI document): one dependency where a bearer dependency under the tenant's, with
    the request's session beside it, made three for FastAPI to solve, each costing more than
    the check's own work on a cache hit. It names the request's actor (the edge set it to
    `system` when the request came in)."""

    async def __call__(self, request: Request) -> CurrentTenant:  # type: ignore[override]
        scheme, plaintext = get_authorization_scheme_param(request.headers.get("authorization"))
        if not plaintext or scheme.lower() != "bearer":
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        problem = key_shape_problem(plaintext)
        if problem is not None:
            raise Unauthorized(f"malformed API key: {problem}")
        runtime: Runtime = request.app.state.runtime
        key_hash = hash_key(plaintext)
        keys = keys_of(runtime)
        key = keys.get(key_hash)
        version = None
        if key is None:
            key = await _read_key(request, keys, key_hash)
            version = key.policy_version
        bind_tenant(key.tenant_id)
        set_actor(api_key_actor(key.key_id))
        key_uses_of(runtime).note(key.key_id, key.last_used_at, runtime.clock.now())
        return CurrentTenant(key.tenant_id, key.tenant_name, version, key.key_id)


# Named as the scheme was before (HTTPBearer's default name is its class's name).
current_tenant = _ApiKeyBearer(
    scheme_name="HTTPBearer",
    auto_error=False,
    description="An API key: `Authorization: Bearer ct_...`",
)


async def _read_key(request: Request, keys: KeyCache, key_hash: str) -> KeyCheck:
    """The key as the database has it now, kept in the key cache if it is valid (an
    unknown or revoked key raises before it could be kept). Read on a reader connection of
    its own (no dependency on the request's session: see `_ApiKeyBearer`), before the
    request's transaction begins."""
    generation = keys.generation  # before the read: see KeyCache.put
    async with reading_first(request) as connection:
        key = await check_key(connection, key_hash)
    keys.put(key_hash, key, generation)
    return key


TenantDep = Annotated[CurrentTenant, Depends(current_tenant)]


async def current_policy(request: Request, tenant: TenantDep) -> TenantPolicy:
    runtime: Runtime = request.app.state.runtime
    version = tenant.policy_version
    if version is None:  # the key came from the cache: its revocation is read with the version
        version = await _current_version(runtime, tenant.key_id)
    policies = policies_of(runtime)
    parsed = policies.parsed(tenant.id, version)
    if parsed is None:
        async with reading_first(request) as connection:
            parsed = await policies.read(connection, tenant.id)
    return _usable(parsed)


def _usable(parsed: TenantPolicy | StoredPolicyInvalid) -> TenantPolicy:
    if isinstance(parsed, StoredPolicyInvalid):
        raise StoredPolicyInvalid(parsed.detail, **parsed.extensions)
    return parsed


async def _current_version(runtime: Runtime, key_id: str) -> int:
    """The tenant's policy version for a key served from the cache, read on a connection of
    the reader pool borrowed for the one statement (as `reading_first`'s: no request's
    session, no write transaction); a key revoked since is refused here, and no longer
    served from this process's cache."""
    try:
        return await policy_version(runtime.read_engine, key_id)
    except Unauthorized:
        keys_of(runtime).forget(key_id)
        raise


PolicyDep = Annotated[TenantPolicy, Depends(current_policy)]


class PolicyReadWith:
    """PolicyDep for a route whose own first statement reads the key's state and the
    tenant's policy version beside its own rows (POST /reservations reads them with the
    place), so that it needs no statement for them: the same refusals and the same policy."""

    def __init__(self, runtime: Runtime, tenant: CurrentTenant) -> None:
        self.runtime, self.tenant = runtime, tenant

    async def policy(
        self, key: KeyState, version: int, *, on: AsyncConnection | None = None
    ) -> TenantPolicy:
        """The policy at `version`, after refusing a key revoked or deleted since it was
        checked (and no longer serving it from this process's key cache). Parsed policies
        are kept per process, so it is read only on a miss (a changed policy, a new
        process): then on `on` if the caller holds a connection it may read on, else on a
        reader connection of its own. So a route need not hold an `AsyncConnection` for it,
        and can run its own statement on the pool's connection as it is (`pooled.borrowed`:
        ~80 µs less CPU a request on PostgreSQL, docs/benchmarks.md "fw3")."""
        if key != "valid":
            keys_of(self.runtime).forget(self.tenant.key_id)
            raise key_refused(revoked=key == "revoked")
        policies = policies_of(self.runtime)
        parsed = policies.parsed(self.tenant.id, version)
        if parsed is None:
            parsed = await self._read(policies, on)
        return _usable(parsed)

    async def _read(
        self, policies: PolicyCache, on: AsyncConnection | None
    ) -> TenantPolicy | StoredPolicyInvalid:
        if on is not None:
            return await policies.read(on, self.tenant.id)
        async with self.runtime.read_engine.connect() as connection:
            return await policies.read(connection, self.tenant.id)


async def policy_read_with(request: Request, tenant: TenantDep) -> PolicyReadWith:
    return PolicyReadWith(request.app.state.runtime, tenant)


PolicyReadWithDep = Annotated[PolicyReadWith, Depends(policy_read_with)]


def forget_key_when_committed(runtime: Runtime, session: AsyncSession, key_id: str) -> None:
    """Once the session's revocation of `key_id` has committed, this process stops serving
    the key from its cache: its next request is refused. Forgotten after the commit, not
    before, so that no request reading the key until then can keep it again (KeyCache.put)."""
    keys = keys_of(runtime)

    async def forget(_: AsyncSession) -> None:
        keys.forget(key_id)

    after_commit(session, forget)


class PolicyCache:
    """Each tenant's parsed policy (or why it does not parse) at the version it was read.
    Shared by the process's requests: a policy handed out must not be changed in place."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[int, TenantPolicy | StoredPolicyInvalid]] = {}
        self._rendered: dict[int, tuple[TenantPolicy, bytes]] = {}

    def as_json(self, policy: TenantPolicy) -> bytes:
        """The policy as its JSON response body, rendered once per parsed policy (a whole
        policy with every default spelled out takes pydantic ~0.1 ms to render)."""
        rendered = self._rendered.get(id(policy))
        if rendered is None or rendered[0] is not policy:
            if len(self._rendered) > len(self._parsed) + 16:
                self._rendered.clear()  # renderings of policies no longer current
            rendered = (policy, policy.model_dump_json(by_alias=True).encode())
            self._rendered[id(policy)] = rendered
        return rendered[1]

    def parsed(self, tenant_id: str, version: int) -> TenantPolicy | StoredPolicyInvalid | None:
        """The tenant's policy as parsed at `version` or later, None if it must be read."""
        cached = self._parsed.get(tenant_id)
        if cached is None or cached[0] < version:
            return None
        return cached[1]

    async def read(
        self, connection: AsyncConnection, tenant_id: str
    ) -> TenantPolicy | StoredPolicyInvalid:
        row = (
            await connection.execute(
                select(Tenant.policy, Tenant.policy_version).where(Tenant.id == tenant_id)
            )
        ).one()
        try:
            parsed: TenantPolicy | StoredPolicyInvalid = parse_policy(row.policy)
        except StoredPolicyInvalid as exc:
            parsed = exc
        # Read after the key check, the row may be newer than the version it named: kept as
        # what it is, so an older version never replaces it.
        entry = (row.policy_version, parsed)
        current = self._parsed.get(tenant_id)
        if current is None or current[0] <= row.policy_version:
            self._parsed[tenant_id] = entry
        return parsed


def policies_of(runtime: Runtime) -> PolicyCache:
    return runtime.service("tenancy.policies", PolicyCache)


def keys_of(runtime: Runtime) -> KeyCache:
    return runtime.service("tenancy.keys", lambda: KeyCache(runtime.settings.key_cache_seconds))


def key_uses_of(runtime: Runtime) -> KeyUses:
    return runtime.service("tenancy.key_uses", lambda: KeyUses(runtime.sessions))
