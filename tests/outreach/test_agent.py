"""The AI voice-agent provider: signed requests (verified with the standardwebhooks library)
to the tenant's agent URL on a real loopback HTTP server, and the outcomes the agent reports
with POST /calls/{id}/outcome driving retries, callbacks inside the windows and opt-outs."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.events.models import Event
from caretime.messaging.providers.mock_agent import MockAgent
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.outreach.support import serving_agent
from tests.support import TEST_API_KEY

ANN = {"name": "Ann Lee", "phone": "212-555-0100"}


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
        voice_provider="agent", public_url="https://caretime.example.org",
    )  # fmt: skip


class Recording(MockAgent):
    """The mock agent, also keeping each raw request (body and headers) as it came."""

    raw: list[tuple[bytes, dict[str, str]]]

    async def _take(self, request):  # type: ignore[no-untyped-def]
        self.raw.append((await request.body(), dict(request.headers)))
        return await super()._take(request)


@pytest.fixture
def agent_server() -> Iterator[tuple[str, Recording]]:
    agent = Recording(secret="")
    agent.raw = []
    with serving_agent(agent) as url:
        yield url, agent


@pytest.fixture
async def agent(client: httpx.AsyncClient, agent_server: tuple[str, Recording]) -> Recording:
    url, mock = agent_server
    answer = (await client.put("/tenants/me/agent", json={"url": url})).json()
    mock.secret = answer["secret"]
    return mock


async def due(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, **body: object
) -> str:
    call = (await client.post("/calls", json={**ANN, **body})).json()
    clock.set(datetime.fromisoformat(call["scheduled"]))
    await dispatcher.run_pending()
    return str(call["id"])


async def report(client: httpx.AsyncClient, call_id: str, **body: object) -> dict:
    response = await client.post(f"/calls/{call_id}/outcome", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_request_is_signed_and_says_everything_the_agent_needs(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording
) -> None:
    call_id = await due(
        client, clock, dispatcher, purpose="flu-shot", script="Hi {{first_name}}",
        variables={"first_name": "Ann"},
    )  # fmt: skip
    ((body, headers),) = agent.raw
    request = Webhook(agent.secret).verify(body, headers)
    assert request == {
        "type": "call.requested",
        "message_id": request["message_id"],
        "to": "+12125550100",
        "call_id": call_id,
        "attempt": 1,
        "tz": "America/New_York",
        "local_time": "2026-03-02T10:00:00-05:00",
        "purpose": "flu-shot",
        "variables": {"first_name": "Ann"},
        "allowed_until": "2026-03-02T22:00:00Z",  # 17:00 in New York, the tenant's window
        "on_machine": {"action": "retry", "message": None},
        "script": "Hi Ann",
        "outcome_url": f"https://caretime.example.org/calls/{call_id}/outcome",
    }
    assert headers["webhook-id"] == request["message_id"]
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 44).verify(body, headers)
    assert (await client.get(f"/calls/{call_id}")).json()["status"] == "dispatching"


async def test_outcomes_complete_the_call_with_disposition_and_summary(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording,
    runtime: Runtime,
) -> None:  # fmt: skip
    call_id = await due(client, clock, dispatcher)
    assert (await report(client, call_id, status="in_progress"))["status"] == "in_progress"
    done = await report(client, call_id, status="completed", disposition="reached",
                        summary="Booked the flu shot for Friday.")  # fmt: skip
    assert (done["status"], done["outcome"]) == ("completed", "reached")
    (attempt,) = done["attempt_history"]
    assert (attempt["disposition"], attempt["summary"]) == (
        "reached", "Booked the flu shot for Friday.")  # fmt: skip
    repeat = {"status": "completed", "disposition": "reached"}
    again = await client.post(f"/calls/{call_id}/outcome", json=repeat)
    assert again.status_code == 200  # a repeated report changes nothing
    late = await client.post(f"/calls/{call_id}/outcome", json={"status": "no_answer"})
    assert late.status_code == 409
    async with runtime.sessions() as session:
        events = list(await session.scalars(select(Event).where(Event.subject_id == call_id)))
    completed = [e for e in events if e.type == "call.completed"]
    assert len(completed) == 1
    assert completed[0].actor.startswith("key:")
    assert "flu shot" not in str(completed[0].data)


async def test_no_answer_is_retried_after_the_delay(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording
) -> None:
    call_id = await due(client, clock, dispatcher)
    call = await report(client, call_id, status="no_answer")
    assert (call["status"], call["attempts"], call["scheduled"]) == (
        "scheduled", 1, "2026-03-02T15:15:00Z")  # fmt: skip
    clock.set(datetime(2026, 3, 2, 15, 15, tzinfo=UTC))
    await dispatcher.run_pending()
    assert len(agent.received) == 2
    assert agent.received[1]["attempt"] == 2


@pytest.mark.parametrize(
    ("callback_at", "scheduled"),
    [
        ("2026-03-02T16:00:00-05:00", "2026-03-02T21:00:00Z"),  # 16:00 local: inside the window
        ("2026-03-02T20:00:00-05:00", "2026-03-03T14:00:00Z"),  # after 17:00: next morning
    ],
)
async def test_a_callback_is_planned_inside_the_windows(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording,
    callback_at: str, scheduled: str,
) -> None:  # fmt: skip
    call_id = await due(client, clock, dispatcher, max_attempts=1)
    call = await report(client, call_id, status="completed", disposition="callback_requested",
                        callback_at=callback_at)  # fmt: skip
    assert (call["status"], call["scheduled"], call["outcome"]) == (
        "scheduled", scheduled, "callback_requested")  # fmt: skip
    clock.set(datetime.fromisoformat(scheduled))
    await dispatcher.run_pending()
    assert [r["attempt"] for r in agent.received] == [1, 2]


async def test_an_opt_out_reported_by_the_agent_stops_future_calls(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording
) -> None:
    call_id = await due(client, clock, dispatcher)
    call = await report(client, call_id, status="completed", disposition="opted_out")
    assert (call["status"], call["outcome"]) == ("completed", "opted_out")
    contact = (await client.get(f"/contacts/{ANN['phone']}")).json()
    assert contact["consent"]["voice"]["how"] == "told the voice agent"
    assert contact["history"][0]["related_id"] == call_id
    again = await client.post("/calls", json={**ANN, "purpose": "other"})
    assert again.status_code == 422
    assert "opted out of calls" in again.json()["detail"]


async def test_the_mock_agent_reports_outcomes_by_digit(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording
) -> None:
    ids = [await due(client, clock, dispatcher, phone=f"212-555-010{d}") for d in (0, 9, 7)]
    assert await agent.report_pending(client) == 3
    calls = [(await client.get(f"/calls/{i}")).json() for i in ids]
    assert [(c["status"], c["outcome"]) for c in calls] == [
        ("completed", "reached"),
        ("scheduled", "no_answer"),
        ("scheduled", "callback_requested"),
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"status": "answered"}, "status"),
        ({"status": "completed", "disposition": "callback_requested"}, "needs callback_at"),
        ({"status": "completed", "callback_at": "2026-03-03T10:00:00"}, "timezone"),
        ({"status": "completed", "summary": "x" * 1001}, "summary"),
        ({"status": "completed", "note": "x"}, "note"),
    ],
)
async def test_bad_reports_are_422(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, agent: Recording,
    body: dict, error: str,
) -> None:  # fmt: skip
    call_id = await due(client, clock, dispatcher)
    response = await client.post(f"/calls/{call_id}/outcome", json=body)
    assert response.status_code == 422
    assert error in response.text


async def test_the_secret_is_shown_once_and_can_be_rotated(client: httpx.AsyncClient) -> None:
    first = (await client.put("/tenants/me/agent", json={"url": "https://a.example/calls"})).json()
    assert first["secret"].startswith("whsec_")
    moved = (await client.put("/tenants/me/agent", json={"url": "https://b.example/calls"})).json()
    assert (moved["secret"], moved["url"]) == (None, "https://b.example/calls")
    assert moved["secret_prefix"] == first["secret"][:10]
    body = {"url": "https://b.example/calls", "rotate_secret": True}
    rotated = (await client.put("/tenants/me/agent", json=body)).json()
    assert rotated["secret"] not in (None, first["secret"])
    assert (await client.get("/tenants/me/agent")).json()["secret"] is None
    bad = await client.put("/tenants/me/agent", json={"url": "ftp://x"})
    assert bad.status_code == 422


async def test_without_an_agent_url_the_call_fails_with_the_reason(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call_id = await due(client, clock, dispatcher, max_attempts=1)
    clock.advance(timedelta(seconds=1))
    await dispatcher.run_pending()
    call = (await client.get(f"/calls/{call_id}")).json()
    assert call["status"] == "failed"
    message = (await client.get(f"/messages/{call['attempt_history'][0]['message_id']}")).json()
    assert "PUT /tenants/me/agent" in message["error"]
