"""Helpers for tests: keyword-only builders and small conveniences."""

from __future__ import annotations

from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy

TEST_API_KEY = "ct_test_bootstrap_key"


async def make_tenant(runtime: Runtime, *, name: str) -> tuple[str, str]:
    """Create a tenant with one key; returns (tenant_id, plaintext key)."""
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.create_tenant(session, name, now=runtime.clock.now())
        _, key = await tenancy.create_key(session, tenant, now=runtime.clock.now())
    return tenant.id, key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
