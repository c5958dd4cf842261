"""Two real `caretime serve` processes on one PostgreSQL database: a policy changed through
one is used by the next request to the other (every route that uses the policy reads its
version); a key revoked through one is refused by the other at once on such a route, and
within CARETIME_KEY_CACHE_SECONDS on any route (each process serves a key it checked a
moment ago from memory)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from caretime.config import Settings
from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from tests.conftest import Database
from tests.support import bearer, make_tenant
from tests.test_serve import CARETIME, free_port

pytestmark = pytest.mark.postgres_only

WAIT = 180.0  # seconds: a bound on waiting (a loaded machine starts slowly), never an assertion
# The servers run with the default key cache: how long a process may serve a key it read.
BOUND = float(Settings.model_fields["key_cache_seconds"].default)


@contextlib.contextmanager
def serving(database: Database, count: int) -> Iterator[list[str]]:
    """`count` caretime serve processes, started at once (each start is seconds of imports,
    which the machine's cores do side by side), stopped after."""
    env = {
        **os.environ,
        "CARETIME_DATABASE_URL": database.url,
        "CARETIME_WORKERS": "0",
        "CARETIME_LOG_LEVEL": "WARNING",
    }
    env.pop("CARETIME_API_KEY", None)
    env.pop("CARETIME_KEY_CACHE_SECONDS", None)
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        ports: set[int] = set()
        while len(ports) < count:  # distinct: none is bound until its process starts
            ports.add(free_port())
        for port in ports:
            process = subprocess.Popen(
                [CARETIME, "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append((f"http://127.0.0.1:{port}", process))
        for url, process in started:
            _wait_until_up(url, process)
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            process.terminate()
        for _, process in started:
            process.wait(timeout=WAIT)


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, "caretime serve exited during start-up"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("caretime serve did not start")


@pytest.fixture
def two_servers(database: Database) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        serving(database, 2) as (first_url, second_url),
        httpx.Client(base_url=first_url, timeout=WAIT) as first,
        httpx.Client(base_url=second_url, timeout=WAIT) as second,
    ):
        yield first, second


async def test_a_key_revoked_through_one_process_is_refused_by_another_within_the_bound(
    two_servers: tuple[httpx.Client, httpx.Client], runtime: Runtime
) -> None:
    first, second = two_servers
    _, key = await make_tenant(runtime, name="acme")
    key_id = first.get("/tenants/me/keys", headers=bearer(key)).json()["items"][0]["id"]
    # The second process reads the key (and keeps it) on a route that does not use the
    # policy; from then on it may serve the key from memory until `read_by` + BOUND.
    assert second.get("/tenants/me/keys", headers=bearer(key)).status_code == 200
    read_by = time.monotonic()

    assert first.delete(f"/tenants/me/keys/{key_id}", headers=bearer(key)).status_code == 200
    refused_here = first.get("/tenants/me/keys", headers=bearer(key))
    assert refused_here.status_code == 401  # at once on the process that revoked it

    deadline = time.monotonic() + WAIT
    answer = second.get("/tenants/me/keys", headers=bearer(key))
    while answer.status_code == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        answer = second.get("/tenants/me/keys", headers=bearer(key))
    assert answer.status_code == 401
    assert "revoked" in answer.json()["detail"]

    # A request sent after the bound cannot be served from a read made before `read_by`.
    await asyncio.sleep(max(0.0, read_by + BOUND - time.monotonic()))
    for path in ["/tenants/me/keys", "/calls/call_missing", "/tenants/me"]:
        assert second.get(path, headers=bearer(key)).status_code == 401


async def test_a_key_revoked_through_one_process_is_refused_at_once_by_a_policy_route_of_another(
    two_servers: tuple[httpx.Client, httpx.Client], runtime: Runtime
) -> None:
    first, second = two_servers
    _, key = await make_tenant(runtime, name="acme")
    other_key = await _second_key(runtime, "acme")
    # Both processes have served the key (and kept it) on routes that do not use the policy.
    for server in (first, second):
        assert server.get("/tenants/me/keys", headers=bearer(key)).status_code == 200

    revoked = first.delete(f"/tenants/me/keys/{key[:10]}", headers=bearer(other_key))
    assert revoked.status_code == 200

    refused = second.get("/tenants/me", headers=bearer(key))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert second.get("/tenants/me/keys", headers=bearer(key)).status_code == 401
    assert first.get("/tenants/me", headers=bearer(key)).status_code == 401
    assert second.get("/tenants/me", headers=bearer(other_key)).status_code == 200


async def _second_key(runtime: Runtime, tenant_name: str) -> str:
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, tenant_name)
        _, plaintext = await tenancy.create_key(session, tenant, now=runtime.clock.now())
    return plaintext


async def test_a_policy_changed_through_one_process_is_used_by_the_next_request_to_another(
    two_servers: tuple[httpx.Client, httpx.Client], runtime: Runtime
) -> None:
    first, second = two_servers
    _, key = await make_tenant(runtime, name="acme")
    for server in (first, second):
        assert (
            server.get("/tenants/me/policy", headers=bearer(key)).json()["booking"]["hold"] == "30m"
        )

    changed = first.patch(
        "/tenants/me/policy", json={"booking": {"hold": "15m"}}, headers=bearer(key)
    )
    assert changed.status_code == 200
    assert second.get("/tenants/me/policy", headers=bearer(key)).json()["booking"]["hold"] == "15m"

    assert _hold_minutes(second, key) == 15  # a reservation made through the other process

    again = second.patch(
        "/tenants/me/policy", json={"booking": {"hold": "45m"}}, headers=bearer(key)
    )
    assert again.status_code == 200
    assert (
        first.get("/tenants/me", headers=bearer(key)).json()["policy"]["booking"]["hold"] == "45m"
    )
    assert _hold_minutes(first, key) == 45


def _hold_minutes(server: httpx.Client, key: str) -> float:
    """How long a new reservation's hold lasts, as the serving process applies the policy."""
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    provider = server.post(
        "/providers", json={"name": "Dr Who", "tz": "UTC"}, headers=bearer(key)
    ).json()["id"]
    window = {"date": day, "start": "08:00", "end": "09:00"}
    opened = server.post(f"/providers/{provider}/availability", json=window, headers=bearer(key))
    assert opened.status_code == 200, opened.text
    held = server.post(
        "/reservations",
        json={"provider_id": provider, "slot_start": f"{day}T08:00:00Z", "client_id": "p-1"},
        headers=bearer(key),
    )
    assert held.status_code == 201, held.text
    body = held.json()
    expires = datetime.fromisoformat(body["expires_at"])
    created = datetime.fromisoformat(body["created_at"])
    return (expires - created).total_seconds() / 60
