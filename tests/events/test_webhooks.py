"""Signed webhook deliveries to a real receiver on loopback: verified with the
`standardwebhooks` library, retried with backoff in order per subject, isolated per endpoint."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.events.receiver import running_receiver
from tests.events.support import add_endpoint, emit_now, tenant_id_of


async def test_deliveries_are_signed_so_standardwebhooks_verifies_them(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        endpoint = await add_endpoint(client, receiver.url("/hook"), event_types=["shift.*"])
        assert endpoint["secret"].startswith("whsec_")
        event_id = await emit_now(
            runtime, tenant_id, "shift.filled", ("shift", "s1"), status="filled"
        )
        await emit_now(runtime, tenant_id, "call.completed", ("call", "c1"))  # not wanted
        await dispatcher.run_pending()
    (request,) = receiver.received
    verified = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert verified["id"] == event_id == request.headers["webhook-id"]
    assert verified["type"] == "shift.filled"
    assert verified["subject"] == {"kind": "shift", "id": "s1"}
    assert verified["data"] == {"status": "filled"}
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(
            request.body.replace("filled", "opened"), request.headers
        )
    listed = (await client.get(f"/webhooks/endpoints/{endpoint['id']}")).json()
    assert "secret" not in listed


async def test_turns_to_an_endpoint_reuse_its_connection(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    """One turn after another, the deliveries to an endpoint keep its connection alive
    instead of opening one per delivery (each a handshake the receiver pays too)."""
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        await add_endpoint(client, receiver.url("/hook"), event_types=["shift.*"])
        for n in range(3):
            await emit_now(runtime, tenant_id, "shift.filled", ("shift", f"s{n}"))
            await dispatcher.run_pending()
    assert len(receiver.received) == 3
    assert len({request.peer for request in receiver.received}) == 1


async def test_a_failing_receiver_gets_each_event_again_with_backoff_in_order(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, clock: FrozenClock
) -> None:
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        receiver.script["/flaky"] = [500, 500, 500, 200]
        endpoint = await add_endpoint(client, receiver.url("/flaky"))
        first = await emit_now(runtime, tenant_id, "shift.filled", ("shift", "s1"))
        second = await emit_now(runtime, tenant_id, "shift.cancelled", ("shift", "s1"))
        await dispatcher.run_pending()
        for _ in range(3):
            due = _parse((await _delivery_of(client, endpoint["id"], first))["next_attempt_at"])
            clock.advance(timedelta(seconds=1))
            await Dispatcher(runtime).run_pending()
            assert len(receiver.received) < 4  # before its time, nothing is sent again
            clock.set(due)
            await Dispatcher(runtime).run_pending()
    ids = [r.event["id"] for r in receiver.received]
    assert ids == [first, first, first, first, second]
    attempts = (await _delivery_of(client, endpoint["id"], first))["attempt_log"]
    assert [a["status_code"] for a in attempts] == [500, 500, 500, 200]
    times = [_parse(a["attempted_at"]) for a in attempts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] < gaps[1] < gaps[2]  # exponential backoff
    log = (await client.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries")).json()
    assert [d["status"] for d in log["items"]] == ["delivered", "delivered"]
    assert all(set(a) == ATTEMPT_FIELDS for a in attempts)  # never the answer's body


ATTEMPT_FIELDS = {"number", "attempted_at", "status_code", "latency_ms", "error"}


async def _delivery_of(
    client: httpx.AsyncClient, endpoint_id: str, event_id: str
) -> dict[str, Any]:
    log = (await client.get(f"/webhooks/endpoints/{endpoint_id}/deliveries")).json()
    found: dict[str, Any] = next(d for d in log["items"] if d["event_id"] == event_id)
    return found


def _parse(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


async def test_a_dead_receiver_does_not_delay_another_endpoint(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        receiver.hanging.add("/dead")
        await add_endpoint(client, receiver.url("/dead"))
        await add_endpoint(client, receiver.url("/alive"))
        for n in range(3):
            await emit_now(runtime, tenant_id, "shift.filled", ("shift", f"s{n}"))
        await dispatcher.run_pending()  # the dead one's turn ends when its requests time out
    alive = receiver.at("/alive")
    assert len(alive) == 3
    assert len(receiver.at("/dead")) == 3
    # Every delivery to the live endpoint arrived before the dead one's first request gave up.
    assert max(r.at for r in alive) < min(receiver.hung_until)
    dead = next(e for e in (await client.get("/webhooks/endpoints")).json()["items"]
                if e["url"].endswith("/dead"))  # fmt: skip
    log = (await client.get(f"/webhooks/endpoints/{dead['id']}/deliveries")).json()["items"]
    assert {d["last_error"] for d in log} == {"timed out after 5 s"}
    assert {d["status"] for d in log} == {"pending"}


async def test_replay_sends_the_events_since_a_moment_again(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, clock: FrozenClock
) -> None:
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        endpoint = await add_endpoint(client, receiver.url("/hook"), event_types=["call.*"])
        old = await emit_now(runtime, tenant_id, "call.completed", ("call", "c0"))
        clock.advance(timedelta(hours=1))
        since = clock.now().isoformat()
        recent = await emit_now(runtime, tenant_id, "call.cancelled", ("call", "c1"))
        await emit_now(runtime, tenant_id, "shift.filled", ("shift", "s1"))  # not wanted
        await dispatcher.run_pending()
        replay = await client.post(
            f"/webhooks/endpoints/{endpoint['id']}/replay", params={"since": since}
        )
        assert replay.json() == {"replayed": 1}
        await Dispatcher(runtime).run_pending()
    # Different subjects go out concurrently, so only the counts are certain.
    assert sorted(r.event["id"] for r in receiver.received) == sorted([old, recent, recent])


async def test_a_delivery_that_failed_for_good_can_be_retried_by_hand(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, clock: FrozenClock
) -> None:
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        receiver.script["/hook"] = [503]
        endpoint = await add_endpoint(client, receiver.url("/hook"))
        await emit_now(runtime, tenant_id, "shift.filled", ("shift", "s1"))
        for _ in range(40):  # every retry until the 3-day window closes (or 24 h disables it)
            clock.advance(timedelta(hours=2))
            await Dispatcher(runtime).run_pending()
        state = (await client.get(f"/webhooks/endpoints/{endpoint['id']}")).json()
        assert state["enabled"] is False
        assert state["disabled_reason"] == "every delivery failed for 24 hours"
        (alert,) = (await client.get("/events", params={"type": "webhook.*"})).json()["items"]
        assert alert["subject"] == {"kind": "webhook_endpoint", "id": endpoint["id"]}
        tries = len(receiver.received)
        (delivery,) = (await client.get(
            f"/webhooks/endpoints/{endpoint['id']}/deliveries")).json()["items"]  # fmt: skip
        refused = await client.post(f"/webhooks/deliveries/{delivery['id']}/retry")
        assert refused.status_code == 409
        await client.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"enabled": True})
        receiver.script["/hook"] = [200]
        retried = await client.post(f"/webhooks/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202
        await Dispatcher(runtime).run_pending()
    assert len(receiver.received) == tries + 1
    done = (await client.get(f"/webhooks/deliveries/{delivery['id']}")).json()
    assert done["status"] == "delivered"
    assert done["attempt_log"][-1]["status_code"] == 200
