"""Tenant-given URLs (webhooks, the voice agent) are checked when set and again at every
connection: in production a host that resolves to an internal address is refused before a
byte is sent, even when its DNS answer changed after the check (DNS rebinding)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from caretime.config import Settings
from caretime.destinations import InternalAddress, guarded_transport
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.providers.agent import AgentProvider
from caretime.messaging.providers.base import (
    OutboundRequest,
    PermanentProviderError,
    TenantEndpoint,
)
from caretime.runtime import Runtime
from tests.events.receiver import running_receiver
from tests.events.support import add_endpoint, emit_now, tenant_id_of

LIMITS = httpx.Limits(max_connections=4)


def as_localhost(url: str) -> str:
    """The receiver's URL by a host name that resolves to loopback: what a rebound name
    looks like at connect time."""
    return url.replace("127.0.0.1", "localhost")


async def test_production_refuses_a_name_that_resolves_inside_at_connect_time() -> None:
    with running_receiver() as receiver:
        transport = guarded_transport(env="production", limits=LIMITS)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.ConnectError) as refused:
                await http.post(as_localhost(receiver.url("/hook")), content=b"{}")
    assert isinstance(refused.value.__cause__, InternalAddress)
    assert "resolves to 127.0.0.1, a loopback" in str(refused.value)
    assert receiver.received == []


async def test_development_and_tests_reach_loopback_receivers() -> None:
    with running_receiver() as receiver:
        transport = guarded_transport(env="test", limits=LIMITS)
        async with httpx.AsyncClient(transport=transport) as http:
            answer = await http.post(as_localhost(receiver.url("/hook")), content=b"{}")
    assert answer.status_code == 200
    assert [r.path for r in receiver.received] == ["/hook"]


async def test_a_webhook_whose_host_now_resolves_inside_is_not_delivered(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        endpoint = await add_endpoint(client, as_localhost(receiver.url("/hook")))
        # The URL passed its check; the deployment is production when the name is looked up.
        runtime.settings = runtime.settings.model_copy(update={"env": "production"})
        await emit_now(runtime, tenant_id, "shift.filled", ("shift", "s1"))
        await dispatcher.run_pending()
    assert receiver.received == []
    deliveries = await client.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries")
    (delivery,) = deliveries.json()["items"]
    assert "refused: the host 'localhost' resolves to 127.0.0.1" in delivery["last_error"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://agent.example.org/calls", "must start with https://"),
        ("https://user:pw@agent.example.org/calls", "must not contain credentials"),
    ],
)
async def test_the_agent_url_follows_the_webhook_rules(
    client: httpx.AsyncClient, url: str, says: str
) -> None:
    kept = await client.put("/tenants/me/agent", json={"url": "https://agent.example.org/a"})
    assert kept.status_code == 200
    refused = await client.put("/tenants/me/agent", json={"url": url})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert says in refused.text
    assert refused.json()["errors"][0]["loc"] == ["body", "url"]
    assert (await client.get("/tenants/me/agent")).json()["url"] == "https://agent.example.org/a"


async def test_the_agent_is_not_called_at_an_address_inside_in_production(
    settings: Settings,
) -> None:
    production = settings.model_copy(update={"env": "production"})
    provider = AgentProvider(production)
    with running_receiver() as receiver:
        endpoint = TenantEndpoint(as_localhost(receiver.url("/calls")), "whsec_" + "A" * 32)
        request = OutboundRequest(
            message_id="msg_1", tenant_id="t1", channel="voice", to="+16175550100",
            from_=None, body="Hello", idempotency_key=None,
            now=datetime(2026, 3, 2, 15, tzinfo=UTC), endpoint=endpoint,
        )  # fmt: skip
        with pytest.raises(PermanentProviderError, match=r"resolves to 127\.0\.0\.1"):
            await provider.send(request)
    assert receiver.received == []
