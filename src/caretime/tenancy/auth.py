"""`Authorization: Bearer <key>` → the caller's tenant and policy, or a 401 problem.

Each request reads its key, the key's revocation, the tenant's name and the tenant's policy
version in one indexed SELECT (`service.check_key`): a key revoked by any process is refused
by the next request on every process. A request that writes reads it on a reader connection
before its write transaction begins (`deps.reading_first`): on SQLite the write lock is not
held across the check. The parsed policy is kept per process, per tenant and version
(`PolicyCache`): parsing it again happens only after a change, which bumps the version. The
key's last use is noted in memory and written in batches (`keyuse.KeyUses`), so no request
writes for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from caretime.deps import SessionDep, reading_first
from caretime.errors import Unauthorized
from caretime.events import set_actor
from caretime.events.actor import api_key_actor
from caretime.observability import bind_tenant
from caretime.runtime import Runtime
from caretime.tenancy.keyshape import key_shape_problem
from caretime.tenancy.keyuse import KeyUses
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.service import StoredPolicyInvalid, check_key, parse_policy

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ct_...`")


@dataclass(frozen=True)
class CurrentTenant:
    """The tenant a request acts for, as its key check read it (not a database row)."""

    id: str
    name: str
    policy_version: int
    key_id: str


async def current_tenant(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CurrentTenant:
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    plaintext = credentials.credentials.strip()
    problem = key_shape_problem(plaintext)
    if problem is not None:
        raise Unauthorized(f"malformed API key: {problem}")
    async with reading_first(request, session) as connection:
        key = await check_key(connection, plaintext)
    bind_tenant(key.tenant_id)
    set_actor(api_key_actor(key.key_id))
    runtime: Runtime = request.app.state.runtime
    key_uses_of(runtime).note(key.key_id, key.last_used_at, runtime.clock.now())
    return CurrentTenant(key.tenant_id, key.tenant_name, key.policy_version, key.key_id)


TenantDep = Annotated[CurrentTenant, Depends(current_tenant)]


async def current_policy(request: Request, tenant: TenantDep, session: SessionDep) -> TenantPolicy:
    policies = policies_of(request.app.state.runtime)
    parsed = policies.parsed(tenant.id, tenant.policy_version)
    if parsed is None:
        async with reading_first(request, session) as connection:
            parsed = await policies.read(connection, tenant.id)
    if isinstance(parsed, StoredPolicyInvalid):
        raise StoredPolicyInvalid(parsed.detail, **parsed.extensions)
    return parsed


PolicyDep = Annotated[TenantPolicy, Depends(current_policy)]


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
    cache = runtime.services.get("tenancy.policies")
    if cache is None:
        cache = runtime.services["tenancy.policies"] = PolicyCache()
    assert isinstance(cache, PolicyCache)
    return cache


def key_uses_of(runtime: Runtime) -> KeyUses:
    uses = runtime.services.get("tenancy.key_uses")
    if uses is None:
        uses = runtime.services["tenancy.key_uses"] = KeyUses(runtime.sessions)
    assert isinstance(uses, KeyUses)
    return uses
