"""The simulated phone network under a frozen clock: every step is a dispatch job."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.providers.simulator import SimulatorProvider
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.messaging.support import PHONE, default_tenant_id, events_of, load_message, make_message
from tests.support import TEST_API_KEY, bearer, make_tenant


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        api_key=TEST_API_KEY,
        workers=0,
        simulator_no_answer_digits="9",
        simulator_busy_digits="8",
    )


async def _step(runtime: Runtime, dispatcher: Dispatcher, seconds: float) -> None:
    runtime.clock.advance(timedelta(seconds=seconds))  # type: ignore[attr-defined]
    await dispatcher.run_pending()


async def _statuses(runtime: Runtime, message_id: str) -> list[str | None]:
    return [event.status for event in await events_of(runtime, message_id)]


async def test_sms_is_sent_then_delivered(
    runtime: Runtime, app: object, dispatcher: Dispatcher
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    sent = await load_message(runtime, message.id)
    assert (sent.status, sent.provider, sent.sent_at) == ("sent", "simulator", runtime.clock.now())
    await _step(runtime, dispatcher, 1)
    assert (await load_message(runtime, message.id)).status == "sent"
    await _step(runtime, dispatcher, 1)
    assert (await load_message(runtime, message.id)).status == "delivered"
    assert await _statuses(runtime, message.id) == ["sent", "delivered"]


@pytest.mark.parametrize(
    ("to", "statuses"),
    [
        ("+12065550100", ["queued", "ringing", "in_progress", "completed"]),
        ("+12065550109", ["queued", "ringing", "no_answer"]),
        ("+12065550108", ["queued", "busy"]),
    ],
)
async def test_call_outcomes(
    runtime: Runtime, app: object, dispatcher: Dispatcher, to: str, statuses: list[str]
) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(runtime, tenant_id=tenant_id, to=to, channel="voice")
    await dispatcher.run_pending()
    for _ in range(8):
        await _step(runtime, dispatcher, 5)
    assert await _statuses(runtime, message.id) == statuses
    assert (await load_message(runtime, message.id)).status == statuses[-1]


async def test_a_long_jump_still_walks_every_step(
    runtime: Runtime, app: object, dispatcher: Dispatcher
) -> None:
    message = await make_message(
        runtime, tenant_id=await default_tenant_id(runtime), channel="voice"
    )
    await dispatcher.run_pending()
    await _step(runtime, dispatcher, 3600)
    assert await _statuses(runtime, message.id) == ["queued", "ringing", "in_progress", "completed"]


def test_failure_rate_is_reproducible_from_the_seed() -> None:
    def failures(seed: int) -> list[bool]:
        provider = SimulatorProvider(Settings(simulator_failure_rate=0.3, simulator_seed=seed))
        return [provider.outcome("sms", PHONE, f"k{i}") == "sms.failed" for i in range(200)]

    assert failures(1) == failures(1)
    assert failures(1) != failures(2)
    assert 30 < sum(failures(1)) < 90


async def test_simulated_phones_list_what_they_received(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    tenant_id = await default_tenant_id(runtime)
    await make_message(runtime, tenant_id=tenant_id, key="a", body="first")
    await make_message(runtime, tenant_id=tenant_id, key="b", body="call", channel="voice")
    await make_message(runtime, tenant_id=tenant_id, key="c", to="+12065550199", body="other")
    queued_only = await client.get("/simulator/messages", params={"to": PHONE})
    assert queued_only.json() == {"items": [], "next_cursor": None}
    await dispatcher.run_pending()
    response = await client.get("/simulator/messages", params={"to": "(206) 555-0100"})
    assert response.status_code == 200
    assert [(m["channel"], m["body"]) for m in response.json()["items"]] == [
        ("voice", "call"),
        ("sms", "first"),
    ]
    assert response.json()["items"][1]["from"] == "+15550001000"
    sms_only = await client.get("/simulator/messages", params={"to": PHONE, "channel": "sms"})
    assert [m["body"] for m in sms_only.json()["items"]] == ["first"]
    _, other_key = await make_tenant(runtime, name="other agency")
    theirs = await client.get("/simulator/messages", headers=bearer(other_key))
    assert theirs.json()["items"] == []
