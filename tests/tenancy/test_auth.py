"""Bearer-key authentication: every way a key can be wrong gets a 401 problem."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError

from caretime.app import create_app
from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.support import bearer, make_tenant


async def test_bootstrap_key_authenticates_the_default_tenant(client: httpx.AsyncClient) -> None:
    response = await client.get("/tenants/me")
    assert response.status_code == 200
    assert response.json()["name"] == "default"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "send an API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "send an API key"),
        ({"Authorization": "Bearer"}, "send an API key"),
        ({"Authorization": "Bearer    "}, "send an API key"),
        ({"Authorization": "Bearer short"}, "malformed"),
        ({"Authorization": "Bearer " + "k" * 201}, "malformed"),
        ({"Authorization": "Bearer not-a-caretime-key"}, "unknown API key"),
        ({"Authorization": "Bearer ct_this_key_does_not_exist"}, "unknown API key"),
    ],
)
async def test_bad_credentials_get_401_problem(
    anon_client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await anon_client.get("/tenants/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401
    assert body["type"] == "urn:caretime:problem:unauthorized"
    assert reason in body["detail"]


async def test_revoked_key_stops_working(anon_client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get("/tenants/me", headers=bearer(key))).status_code == 200
    keys = (await anon_client.get("/tenants/me/keys", headers=bearer(key))).json()["items"]
    assert len(keys) == 1

    revoked = await anon_client.delete(f"/tenants/me/keys/{keys[0]['id']}", headers=bearer(key))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"].endswith("Z")

    after = await anon_client.get("/tenants/me", headers=bearer(key))
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


async def test_only_a_hash_of_the_key_is_stored(runtime: Runtime) -> None:
    from sqlalchemy import select

    from caretime.tenancy.models import ApiKey

    _, key = await make_tenant(runtime, name="acme")
    async with runtime.sessions() as session:
        stored = (await session.execute(select(ApiKey.key_hash, ApiKey.prefix))).all()
    assert all(key not in row.key_hash for row in stored)
    assert any(key.startswith(row.prefix) for row in stored)


async def test_last_use_is_recorded_at_most_once_a_minute(
    anon_client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    await anon_client.get("/tenants/me", headers=bearer(key))
    first = (await anon_client.get("/tenants/me/keys", headers=bearer(key))).json()["items"][0]
    assert first["last_used_at"] == "2026-03-02T15:00:00Z"

    clock.advance(timedelta(seconds=30))
    await anon_client.get("/tenants/me", headers=bearer(key))
    clock.advance(timedelta(seconds=40))
    await anon_client.patch("/tenants/me/policy", json={}, headers=bearer(key))
    later = (await anon_client.get("/tenants/me/keys", headers=bearer(key))).json()["items"][0]
    assert later["last_used_at"] == "2026-03-02T15:01:10Z"


@pytest.mark.parametrize("configured", ["my-own-demo-key", "0123456789abcdef", "CT_UPPER_case"])
async def test_a_configured_key_without_the_ct_prefix_is_accepted(
    database: Database, clock: FrozenClock, configured: str
) -> None:
    settings = Settings(env="test", database_url=database.url, api_key=configured, workers=0)  # type: ignore[arg-type]
    runtime = Runtime.build(settings, clock)
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://caretime.test") as client,
    ):
        response = await client.get("/tenants/me", headers=bearer(configured))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "default"


@pytest.mark.parametrize(
    ("configured", "complaint"), [("short", "8 to 200"), ("two words", "spaces")]
)
def test_an_unusable_configured_key_refuses_to_start(configured: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(env="test", api_key=configured)  # type: ignore[arg-type]


async def test_last_use_is_written_by_the_batched_flush_not_by_the_request(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from sqlalchemy import select

    from caretime.tenancy.auth import key_uses_of
    from caretime.tenancy.models import ApiKey

    _, key = await make_tenant(runtime, name="acme")

    async def stored() -> list[object]:
        async with runtime.sessions() as session:
            mine = select(ApiKey.last_used_at).where(ApiKey.prefix == key[:10])
            return list(await session.scalars(mine))

    assert (await anon_client.get("/tenants/me", headers=bearer(key))).status_code == 200
    assert await stored() == [None]  # the request itself wrote nothing

    assert await key_uses_of(runtime).flush() == 1
    assert [str(at) for at in await stored()] == ["2026-03-02 15:00:00+00:00"]
    assert await key_uses_of(runtime).flush() == 0  # nothing new to write


async def test_an_authenticated_read_answers_while_a_writer_holds_the_database(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """On SQLite a writer holds the one write lock; a read (its key check included) must not
    queue behind it: it neither writes (last use is batched) nor takes the lock."""
    import asyncio

    from sqlalchemy import update

    from caretime.db import transaction
    from caretime.tenancy.models import Tenant

    async with transaction(runtime.sessions) as writer:
        await writer.execute(update(Tenant).values(name=Tenant.name))  # the write lock, held
        read = await asyncio.wait_for(client.get("/tenants/me"), timeout=60)  # liveness only
        calls = await asyncio.wait_for(client.get("/calls"), timeout=60)
    assert read.status_code == 200
    assert calls.status_code == 200


async def test_a_use_noted_with_a_last_use_read_before_the_flush_is_not_written_again(
    runtime: Runtime, clock: FrozenClock
) -> None:
    """A key served from the key cache carries the last use as read up to a few seconds ago,
    perhaps before the flush that wrote a later one: that flush's write still counts."""
    from caretime.tenancy.auth import key_uses_of

    key_id = "key_read_from_the_cache"
    uses = key_uses_of(runtime)
    uses.note(key_id, None, clock.now())
    assert await uses.flush() == 1
    clock.advance(timedelta(seconds=30))
    uses.note(key_id, None, clock.now())  # the stale read: no last use yet
    assert await uses.flush() == 0
    clock.advance(timedelta(seconds=31))
    uses.note(key_id, None, clock.now())
    assert await uses.flush() == 1
