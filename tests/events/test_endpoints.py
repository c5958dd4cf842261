"""Webhook endpoints: what is refused (and why, in words), the secret shown once, tenant
isolation of endpoints, deliveries and the feed."""

from __future__ import annotations

import httpx
import pytest

from caretime.destinations import check_url
from caretime.dispatch.worker import Dispatcher
from caretime.errors import InvalidInput
from caretime.runtime import Runtime
from tests.events.receiver import running_receiver
from tests.events.support import add_endpoint, emit_now, tenant_id_of
from tests.support import bearer, make_tenant


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "ftp://example.com/hook"}, "must start with https://"),
        ({"url": "https://user:pw@example.com/hook"}, "must not contain credentials"),
        ({"url": "not a url"}, "must start with https://"),
        ({"url": "https://example.com/h", "event_types": ["call.teleported"]}, "call.teleported"),
        ({"url": "https://example.com/h", "event_types": ["cal.*"]}, "valid: *, appointment.*"),
        ({"url": "https://example.com/h", "event_types": []}, "event_types"),
    ],
)
async def test_bad_endpoints_are_refused_and_nothing_is_created(
    client: httpx.AsyncClient, body: dict[str, object], says: str
) -> None:
    response = await client.post("/webhooks/endpoints", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.text
    assert (await client.get("/webhooks/endpoints")).json() == {"items": []}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.com/hook", "https:// in production"),
        ("https://169.254.169.254/latest/meta-data", "link-local or metadata"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[fd00:ec2::254]/", "metadata"),
    ],
)
async def test_production_refuses_plain_http_and_internal_addresses(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        await check_url(url, env="production")


async def test_loopback_http_is_fine_in_development_and_tests() -> None:
    assert await check_url("http://127.0.0.1:9000/hook", env="test") == "http://127.0.0.1:9000/hook"


async def test_a_bad_change_changes_nothing_and_the_secret_is_shown_once(
    client: httpx.AsyncClient,
) -> None:
    created = await add_endpoint(client, "https://example.com/hook", event_types=["call.*"])
    path = f"/webhooks/endpoints/{created['id']}"
    bad = await client.patch(path, json={"url": "https://example.com/new", "event_types": ["x"]})
    assert bad.status_code == 422
    shown = (await client.get(path)).json()
    assert (shown["url"], shown["event_types"]) == ("https://example.com/hook", ["call.*"])
    assert "secret" not in shown
    assert all("secret" not in e for e in (await client.get("/webhooks/endpoints")).json()["items"])
    unchanged = await client.patch(path, json={"description": None, "url": None})
    assert unchanged.status_code == 200
    assert unchanged.json()["url"] == "https://example.com/hook"
    changed = await client.patch(path, json={"enabled": False, "event_types": ["*"]})
    assert (changed.json()["enabled"], changed.json()["event_types"]) == (False, ["*"])
    assert (await client.delete(path)).status_code == 204
    assert (await client.get(path)).status_code == 404


async def test_tenant_b_never_sees_lists_changes_or_receives_tenant_a(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    tenant_a = await tenant_id_of(client)
    _, key_b = await make_tenant(runtime, name="other clinic")
    b = bearer(key_b)
    with running_receiver() as receiver:
        endpoint_a = await add_endpoint(client, receiver.url("/a"))
        created_b = await client.post("/webhooks/endpoints", headers=b,
                                      json={"url": receiver.url("/b")})  # fmt: skip
        assert created_b.status_code == 201
        event_a = await emit_now(runtime, tenant_a, "shift.filled", ("shift", "s1"))
        await dispatcher.run_pending()
    assert [r.event["id"] for r in receiver.at("/a")] == [event_a]
    assert receiver.at("/b") == []
    path = f"/webhooks/endpoints/{endpoint_a['id']}"
    for method, url in (
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("GET", f"{path}/deliveries"),
        ("POST", f"{path}/replay?since=2020-01-01T00:00:00Z"),
    ):
        response = await client.request(
            method, url, headers=b, json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, (method, url)
    (delivery,) = (await client.get(f"{path}/deliveries")).json()["items"]
    for url in (
        f"/webhooks/deliveries/{delivery['id']}",
        f"/webhooks/deliveries/{delivery['id']}/retry",
    ):
        method = "GET" if url.endswith(str(delivery["id"])) else "POST"
        assert (await client.request(method, url, headers=b)).status_code == 404
    listed = (await client.get("/webhooks/endpoints", headers=b)).json()["items"]
    assert [e["url"] for e in listed] == [receiver.url("/b")]
    assert (await client.get("/events", headers=b)).json()["items"] == []
    assert (await client.get("/events", params={"subject": "shift:s1"}, headers=b)).json()[
        "items"
    ] == []
    assert len((await client.get("/events")).json()["items"]) == 1
