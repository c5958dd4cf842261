"""One claim starts all the calls due together, in bulk: each is re-checked against the
contact's caps counting the calls to the same number started before it in the same claim;
on PostgreSQL two dispatchers claiming one minute at once place each call exactly once; a
call whose window closed between its claim and its request is not placed."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.db import transaction
from caretime.dispatch.queue import enqueue
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.outreach.models import Call, CallAttempt
from caretime.outreach.writing import PLACE_MINUTE
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.outreach.support import make_items, serving_agent, set_calling_policy
from tests.outreach.test_minute_jobs import STATUSES, minute_jobs, placed
from tests.outreach.test_minute_jobs_agent import Agent
from tests.support import TEST_API_KEY

DUE = "2026-03-02T15:30:00Z"


async def create(client: httpx.AsyncClient, phone: str, **body: object) -> str:
    call = {"name": "Ann", "phone": phone, "scheduled": DUE, **body}
    response = await client.post("/calls", json=call)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_one_claim_counts_the_calls_it_starts_against_each_numbers_caps(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    """Three calls to one number and two to others due in the same second, at most one
    attempt a day per number: one claim starts one call per number and moves the others to
    the next day."""
    await set_calling_policy(client, max_attempts_per_day=1)
    shared = [await create(client, "212-555-0100", purpose=p) for p in ("a", "b", "c")]
    others = [await create(client, phone) for phone in ("212-555-0101", "212-555-0102")]
    clock.set(datetime.fromisoformat(DUE))
    await dispatcher.run_pending()
    outcomes = [await placed(runtime, call_id) for call_id in shared]
    assert sorted(outcomes) == [("dispatching", 1, 1), ("scheduled", 0, 0), ("scheduled", 0, 0)]
    for call_id in others:
        assert await placed(runtime, call_id) == ("dispatching", 1, 1)
    for call_id in shared:
        call = (await client.get(f"/calls/{call_id}")).json()
        if call["status"] == "scheduled":
            assert call["scheduled"] >= "2026-03-03"


@pytest.mark.postgres_only
async def test_two_dispatchers_claiming_one_minute_at_once_place_each_call_exactly_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    """Two runs of one minute whose claims take the same due calls (two job rows for it, as a
    worker that lost its lease would leave): each call has one attempt and one message, and
    the claims, which lock many contacts at once, never deadlock."""
    await set_calling_policy(client, max_calls_per_minute=60)
    numbers = make_items(count=30) + make_items(count=30, exchange=556)
    results = (await client.post("/schedule", json=numbers)).json()
    (job,) = await minute_jobs(runtime, "queued")
    async with transaction(runtime.sessions) as session:
        await enqueue(
            session, PLACE_MINUTE, job.payload, run_at=job.run_at, tenant_id=job.tenant_id
        )
    clock.advance(timedelta(minutes=2))  # every call of the minute is due: one claim each
    dispatchers = [Dispatcher(runtime, batch_size=1, worker_id=f"w{i}") for i in range(2)]
    await asyncio.gather(*(d.run_pending() for d in dispatchers))
    assert [job.status for job in await minute_jobs(runtime, *STATUSES)] == ["done"] * 2
    for result in results:
        assert await placed(runtime, result["scheduled_task_id"]) == ("dispatching", 1, 1)
    async with runtime.sessions() as session:
        attempts = await session.scalar(select(func.count()).select_from(CallAttempt))
        messages = await session.scalar(select(func.count()).select_from(Message))
    assert attempts == messages == len(results) == 60


class TestWindowClosedBeforeTheRequest:
    """The agent takes one request every 2 s (after a burst of two): the third call due in
    the same second waits for its slot beyond what a run waits in process, so its minute's
    job comes back for it. By then its window has closed."""

    @pytest.fixture
    def settings(self, database: Database) -> Settings:
        return Settings(
            env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
            voice_provider="agent", public_url="https://caretime.example.org",
            agent_rate_limit=0.5,
        )  # fmt: skip

    @pytest.fixture
    async def agent(self, client: httpx.AsyncClient) -> object:
        mock = Agent(secret="")
        with serving_agent(mock) as url:
            answer = (await client.put("/tenants/me/agent", json={"url": url})).json()
            mock.secret = answer["secret"]
            yield mock

    async def test_the_call_is_not_placed_and_goes_back_on_the_schedule(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, agent: Agent
    ) -> None:
        calls = [await create(client, f"212-555-010{i}") for i in range(3)]
        clock.set(datetime.fromisoformat(DUE))
        await Dispatcher(runtime).run_pending()
        request, _ = agent.received
        (waiting,) = set(calls) - {str(sent["call_id"]) for sent in agent.received}
        assert await placed(runtime, waiting) == ("dispatching", 1, 0)
        closed = datetime.fromisoformat(str(request["allowed_until"]))
        clock.set(closed + timedelta(minutes=1))
        await Dispatcher(runtime).run_pending()
        assert len(agent.received) == 2  # never sent
        call = (await client.get(f"/calls/{waiting}")).json()
        assert (call["status"], call["attempts"], call["outcome"]) == ("scheduled", 1, "canceled")
        assert datetime.fromisoformat(call["scheduled"]) > closed  # the next window
        async with runtime.sessions() as session:
            message = await session.scalar(
                select(Message).where(Message.idempotency_key.like(f"outreach.call:{waiting}:%"))
            )
            row = await session.get(Call, waiting)
        assert message is not None
        assert (message.status, message.provider_id) == ("canceled", None)
        assert "allowed only until" in str(message.error)
        assert row is not None
        assert row.scheduled_at > closed.astimezone(UTC)
