"""Tenant isolation: one tenant's key can never read or change another tenant's rows."""

from __future__ import annotations

import httpx

from caretime.runtime import Runtime
from tests.support import bearer, make_tenant


async def test_a_tenant_sees_only_its_own_keys(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key_a = await make_tenant(runtime, name="tenant-a")
    _, key_b = await make_tenant(runtime, name="tenant-b")
    keys_a = (await anon_client.get("/tenants/me/keys", headers=bearer(key_a))).json()["items"]
    keys_b = (await anon_client.get("/tenants/me/keys", headers=bearer(key_b))).json()["items"]
    assert {k["id"] for k in keys_a}.isdisjoint({k["id"] for k in keys_b})


async def test_a_tenant_cannot_revoke_another_tenants_key(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key_a = await make_tenant(runtime, name="tenant-a")
    _, key_b = await make_tenant(runtime, name="tenant-b")
    b_key_id = (await anon_client.get("/tenants/me/keys", headers=bearer(key_b))).json()["items"][
        0
    ]["id"]

    attempt = await anon_client.delete(f"/tenants/me/keys/{b_key_id}", headers=bearer(key_a))
    assert attempt.status_code == 404
    assert b_key_id not in attempt.text.replace(f"no API key {b_key_id!r}", "")

    assert (await anon_client.get("/tenants/me", headers=bearer(key_b))).status_code == 200


async def test_policy_changes_stay_with_their_tenant(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key_a = await make_tenant(runtime, name="tenant-a")
    _, key_b = await make_tenant(runtime, name="tenant-b")
    patch = {"booking": {"hold": "15m"}}
    assert (
        await anon_client.patch("/tenants/me/policy", json=patch, headers=bearer(key_a))
    ).is_success

    policy_a = (await anon_client.get("/tenants/me/policy", headers=bearer(key_a))).json()
    policy_b = (await anon_client.get("/tenants/me/policy", headers=bearer(key_b))).json()
    assert policy_a["booking"]["hold"] == "15m"
    assert policy_b["booking"]["hold"] == "30m"
