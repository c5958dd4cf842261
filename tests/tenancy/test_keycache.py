"""The per-process key cache: a key checked a moment ago costs no statement, a revocation is
seen at once by the process that made it and by any route that reads the policy, and within
CARETIME_KEY_CACHE_SECONDS everywhere else (tests/tenancy/test_processes.py shows that across
two real processes). Statements are counted at the driver (`tests.support.statements_sent`):
some reads are sent by the driver itself, which SQLAlchemy's events do not see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.app import create_app
from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from caretime.tenancy.auth import forget_key_when_committed, keys_of
from caretime.tenancy.keycache import KeyCache
from caretime.tenancy.models import ApiKey, Tenant
from caretime.tenancy.service import KeyCheck
from tests.conftest import Database
from tests.support import bearer, end_the_pools_connections, make_tenant, statements_sent

# Routes that do not read the tenant's policy: served from the cache without an auth statement.
PLAIN_READS = ["/calls/call_missing", "/reservations/res_missing"]
# ...and the table each reads: GET /calls/{id} by the driver itself, GET /reservations/{id}
# through SQLAlchemy.
READS_FROM = {"/calls/call_missing": "FROM calls", "/reservations/res_missing": "FROM appointments"}


class FakeMonotonic:
    """The cache's clock, moved by hand: its bound is real time, which a test must not wait."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reading_keys(seen: list[str]) -> list[str]:
    return [statement for statement in seen if "api_keys" in statement]


async def revoke_elsewhere(runtime: Runtime, key: str) -> None:
    """Revoke as another process would: in the database, unseen by this process's cache."""
    async with transaction(runtime.sessions) as session:
        tenant, _ = await tenancy.authenticate(session, key)
        await tenancy.revoke_key(session, tenant.id, key[:10], now=runtime.clock.now())


@pytest.fixture
def cache_clock(runtime: Runtime) -> FakeMonotonic:
    fake = FakeMonotonic()
    keys_of(runtime).monotonic = fake
    return fake


@pytest.mark.parametrize("path", PLAIN_READS)
async def test_a_key_checked_a_moment_ago_costs_no_statement(
    anon_client: httpx.AsyncClient, runtime: Runtime, path: str
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    async with statements_sent(runtime) as first:
        assert (await anon_client.get(path, headers=bearer(key))).status_code == 404
    async with statements_sent(runtime) as second:
        assert (await anon_client.get(path, headers=bearer(key))).status_code == 404

    assert len(reading_keys(first)) == 1
    assert reading_keys(second) == []
    # The route's own read, the same as the first request's, and nothing else.
    assert len(second) == 1
    assert READS_FROM[path] in second[0]
    assert second == [statement for statement in first if "api_keys" not in statement]


async def test_a_policy_route_reads_the_version_and_the_revocation_in_one_statement(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get("/tenants/me", headers=bearer(key))).status_code == 200
    async with statements_sent(runtime) as seen:
        assert (await anon_client.get("/tenants/me", headers=bearer(key))).status_code == 200
    assert len(seen) == 1
    assert "revoked_at" in seen[0]
    assert "policy_version" in seen[0]


async def test_a_key_deleted_elsewhere_is_refused_at_once_by_a_route_that_reads_the_policy(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get("/tenants/me", headers=bearer(key))).status_code == 200
    async with transaction(runtime.sessions) as session:  # as a tenant's removal would
        await session.execute(delete(ApiKey).where(ApiKey.key_hash == tenancy.hash_key(key)))

    refused = await anon_client.get("/tenants/me", headers=bearer(key))
    assert refused.status_code == 401
    assert "unknown" in refused.json()["detail"]
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 401


@pytest.mark.postgres_only
async def test_a_policy_route_lends_no_connection_the_database_ended(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # The policy version of a cached key is read on a borrowed pooled connection with no
    # SQLAlchemy Connection around it to notice a dead one (`pooled.borrowed`): one asyncpg
    # already knows closed is never used, and finding one renews the whole pool.
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get("/tenants/me", headers=bearer(key))).status_code == 200
    ended = await end_the_pools_connections(runtime)

    answers = [
        (await anon_client.get("/tenants/me", headers=bearer(key))).status_code
        for _ in range(ended + 3)
    ]

    assert ended >= 1
    # At most one request a process fails (asyncpg may not yet have read the end of a
    # connection when it is next lent); then the pool is renewed and all answer.
    assert answers.count(500) <= 1
    assert answers[-3:] == [200] * 3
    assert set(answers) <= {200, 500}


async def test_a_key_revoked_on_this_process_is_refused_by_its_next_request(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    listed = await anon_client.get("/tenants/me/keys", headers=bearer(key))
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 404

    key_id = listed.json()["items"][0]["id"]
    revoked = await anon_client.delete(f"/tenants/me/keys/{key_id}", headers=bearer(key))
    assert revoked.status_code == 200

    for path in PLAIN_READS:
        refused = await anon_client.get(path, headers=bearer(key))
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]


async def test_a_key_revoked_elsewhere_is_refused_once_the_bound_has_passed(
    anon_client: httpx.AsyncClient, runtime: Runtime, cache_clock: FakeMonotonic
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 404
    await revoke_elsewhere(runtime, key)

    cache_clock.now += runtime.settings.key_cache_seconds / 2
    served = await anon_client.get(PLAIN_READS[0], headers=bearer(key))
    assert served.status_code == 404  # within the bound: the cached check stands

    cache_clock.now += runtime.settings.key_cache_seconds / 2
    refused = await anon_client.get(PLAIN_READS[0], headers=bearer(key))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


async def test_a_key_revoked_elsewhere_is_refused_at_once_by_a_route_that_reads_the_policy(
    anon_client: httpx.AsyncClient, runtime: Runtime, cache_clock: FakeMonotonic
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 404
    await revoke_elsewhere(runtime, key)

    for path in ["/tenants/me", "/tenants/me/policy"]:
        refused = await anon_client.get(path, headers=bearer(key))
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
    # ...and from then on by every route of this process, the bound not yet passed.
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 401


async def test_this_process_forgets_a_revoked_key_when_the_revocation_commits_not_before(
    anon_client: httpx.AsyncClient, runtime: Runtime, cache_clock: FakeMonotonic
) -> None:
    """Forgotten before the commit, a request reading the key meanwhile would keep it again
    (it still reads as valid); forgotten only if the revocation commits."""
    _, key = await make_tenant(runtime, name="acme")
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 404
    keys, key_hash = keys_of(runtime), tenancy.hash_key(key)

    with pytest.raises(RuntimeError):
        await _revoke_then_fail(runtime, key)
    assert keys.get(key_hash) is not None

    async with transaction(runtime.sessions) as session:
        await _revoke_and_forget(runtime, session, key)
        assert keys.get(key_hash) is not None  # not before the commit
    assert keys.get(key_hash) is None
    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 401


async def _revoke_then_fail(runtime: Runtime, key: str) -> None:
    async with transaction(runtime.sessions) as session:
        await _revoke_and_forget(runtime, session, key)
        raise RuntimeError("the revocation rolls back")


async def _revoke_and_forget(runtime: Runtime, session: AsyncSession, key: str) -> None:
    tenant, api_key = await tenancy.authenticate(session, key)
    await tenancy.revoke_key(session, tenant.id, api_key.id, now=runtime.clock.now())
    forget_key_when_committed(runtime, session, api_key.id)


async def test_an_unknown_key_is_not_kept_and_works_as_soon_as_it_exists(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tenant_id, _ = await make_tenant(runtime, name="acme")
    future_key = tenancy.generate_key()
    unknown = await anon_client.get(PLAIN_READS[0], headers=bearer(future_key))
    assert unknown.status_code == 401
    assert "unknown" in unknown.json()["detail"]
    cached_before = len(keys_of(runtime))

    async with transaction(runtime.sessions) as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        await tenancy.create_key(session, tenant, now=runtime.clock.now(), plaintext=future_key)

    assert (await anon_client.get(PLAIN_READS[0], headers=bearer(future_key))).status_code == 404
    assert len(keys_of(runtime)) == cached_before + 1


@pytest.fixture
async def uncached_client(database: Database, clock: FrozenClock) -> AsyncIterator[Any]:
    settings = Settings(
        env="test",
        database_url=database.url,
        workers=0,
        key_cache_seconds=0,
    )
    runtime = Runtime.build(settings, clock)
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://caretime.test") as client,
    ):
        yield client, runtime
    await runtime.close()


async def test_with_no_cache_every_request_reads_its_key(uncached_client: Any) -> None:
    client, runtime = uncached_client
    _, key = await make_tenant(runtime, name="acme")
    for _ in range(3):
        async with statements_sent(runtime) as seen:
            assert (await client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 404
        assert len(reading_keys(seen)) == 1
    assert len(keys_of(runtime)) == 0

    await revoke_elsewhere(runtime, key)
    assert (await client.get(PLAIN_READS[0], headers=bearer(key))).status_code == 401


def check(key_id: str) -> KeyCheck:
    return KeyCheck(key_id, "ten_1", "acme", 0, datetime(2026, 3, 2, tzinfo=UTC))


def test_the_cache_holds_at_most_its_bound_of_entries_dropping_the_oldest() -> None:
    cache = KeyCache(2, max_entries=3, monotonic=FakeMonotonic())
    for number in range(10):
        cache.put(f"hash-{number}", check(f"key-{number}"), cache.generation)
        assert len(cache) <= 3
    assert [cache.get(f"hash-{n}") is not None for n in range(10)] == [False] * 7 + [True] * 3


def test_expired_entries_are_dropped_as_new_ones_arrive() -> None:
    clock = FakeMonotonic()
    cache = KeyCache(2, monotonic=clock)
    cache.put("old", check("key-old"), cache.generation)
    clock.now += 2
    cache.put("new", check("key-new"), cache.generation)
    assert len(cache) == 1
    assert cache.get("new") is not None


def test_a_check_read_before_a_revocation_is_forgotten_is_not_kept() -> None:
    """A request that read the key before a revocation committed must not put it back after
    this process forgot it: the next request would be served a revoked key."""
    cache = KeyCache(2, monotonic=FakeMonotonic())
    cache.put("hash", check("key-1"), cache.generation)
    read_started = cache.generation
    cache.forget("key-1")
    assert cache.get("hash") is None
    cache.put("hash", check("key-1"), read_started)
    assert cache.get("hash") is None


def test_a_cache_of_zero_seconds_keeps_nothing() -> None:
    cache = KeyCache(0, monotonic=FakeMonotonic())
    cache.put("hash", check("key-1"), cache.generation)
    assert cache.get("hash") is None
    assert len(cache) == 0
