"""Caregivers over HTTP: opaque ids, E.164 phones, roles, active flag, tenant isolation."""

from __future__ import annotations

import asyncio

import httpx

from caretime.runtime import Runtime
from tests.support import bearer, make_tenant


async def test_create_normalises_phone_and_roles_and_keeps_opaque_id(
    client: httpx.AsyncClient,
) -> None:
    body = {"id": "cg-7/x", "name": "Ana", "phone": "(206) 555-0100", "roles": ["rn", " lpn", "RN"]}
    response = await client.post("/caregivers", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] == "cg-7/x"
    assert created["phone"] == "+12065550100"
    assert created["roles"] == ["LPN", "RN"]
    assert created["active"] is True


async def test_generated_id_when_none_given(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/caregivers", json={"name": "Ana", "phone": "+12065550100", "roles": ["CNA"]}
    )
    assert response.status_code == 201
    assert response.json()["id"].startswith("cg_")


async def test_undialable_phone_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/caregivers", json={"name": "Ana", "phone": "+15550001", "roles": ["RN"]}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["loc"] == ["body", "phone"]


async def test_duplicate_id_conflicts(client: httpx.AsyncClient) -> None:
    body = {"id": "c1", "name": "Ana", "phone": "+12065550100", "roles": ["RN"]}
    assert (await client.post("/caregivers", json=body)).status_code == 201
    response = await client.post("/caregivers", json=body)
    assert response.status_code == 409
    assert response.json()["type"].endswith("caregiver-exists")


async def test_patch_changes_roles_and_active(client: httpx.AsyncClient) -> None:
    body = {"id": "c1", "name": "Ana", "phone": "+12065550100", "roles": ["RN"]}
    await client.post("/caregivers", json=body)
    response = await client.patch("/caregivers/c1", json={"roles": ["CNA"], "active": False})
    assert response.status_code == 200
    assert response.json()["roles"] == ["CNA"]
    assert response.json()["active"] is False
    assert (await client.get("/caregivers/c1")).json()["roles"] == ["CNA"]
    assert (await client.patch("/caregivers/nope", json={"active": True})).status_code == 404


async def test_list_filters_by_role_and_active_with_cursor(client: httpx.AsyncClient) -> None:
    for n, roles, active in [(1, ["RN"], True), (2, ["RN", "LPN"], True), (3, ["RN"], False)]:
        body = {"id": f"c{n}", "name": "X", "phone": f"+1206555010{n}", "roles": roles}
        await client.post("/caregivers", json={**body, "active": active})
    first = (
        await client.get("/caregivers", params={"role": "rn", "active": "true", "limit": 1})
    ).json()
    assert [c["id"] for c in first["items"]] == ["c1"]
    rest = await client.get(
        "/caregivers", params={"role": "RN", "active": "true", "cursor": first["next_cursor"]}
    )
    assert [c["id"] for c in rest.json()["items"]] == ["c2"]
    lpn = (await client.get("/caregivers", params={"role": "LPN"})).json()
    assert [c["id"] for c in lpn["items"]] == ["c2"]


async def test_other_tenants_caregivers_are_invisible_and_ids_may_repeat(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = {"id": "c1", "name": "Ana", "phone": "+12065550100", "roles": ["RN"]}
    await client.post("/caregivers", json=body)
    _, key = await make_tenant(runtime, name="other agency")
    other = bearer(key)
    assert (await client.get("/caregivers/c1", headers=other)).status_code == 404
    assert (await client.post("/caregivers", json=body, headers=other)).status_code == 201
    assert (await client.get("/caregivers", headers=other)).json()["items"][0]["id"] == "c1"


async def test_requires_api_key(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get("/caregivers")).status_code == 401


async def test_concurrent_creates_of_one_id_give_one_201_and_409s(
    client: httpx.AsyncClient,
) -> None:
    body = {"id": "same", "name": "Ana", "phone": "+12065550100", "roles": ["RN"]}
    responses = await asyncio.gather(*(client.post("/caregivers", json=body) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
    shift = {
        "id": "s",
        "role_required": "RN",
        "start_time": "2026-03-03T00:00:00Z",
        "end_time": "2026-03-03T08:00:00Z",
    }
    responses = await asyncio.gather(*(client.post("/shifts", json=shift) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
