"""The minute job with the AI voice-agent provider on a real loopback HTTP server that can
stall or refuse: a call added to a minute while its job is handing calls over still rings;
a worker stopped mid-minute leaves the rest to the job's retry, and nothing rings twice;
a request the agent refuses for now is tried again by the minute's job."""

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.providers.mock_agent import MockAgent
from caretime.outreach.writing import PLACE_MINUTE
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.outreach.support import make_items, serving_agent, set_calling_policy
from tests.support import TEST_API_KEY

WAIT = 60.0  # seconds: a bound on waiting, never an assertion


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
        voice_provider="agent", public_url="https://caretime.example.org",
    )  # fmt: skip


class Agent(MockAgent):
    """The mock agent, answering the first `accept` requests and then, as told, stalling
    (the request stays open until `release`) or refusing for now (503)."""

    accept: int | None = None
    then: str = "stall"
    released: threading.Event

    async def _take(self, request: Request) -> Response:
        answer = await super()._take(request)
        if self.accept is None or len(self.received) <= self.accept:
            return answer
        if self.then == "refuse":
            self.received.pop()
            return JSONResponse({"error": "busy"}, status_code=503)
        while not self.released.is_set():  # noqa: ASYNC110 - another thread sets it
            await asyncio.sleep(0.01)
        return answer

    def calls(self) -> Counter[str]:
        return Counter(str(call["call_id"]) for call in self.received)


@pytest.fixture
def agent_server() -> Iterator[tuple[str, Agent]]:
    agent = Agent(secret="")
    agent.released = threading.Event()
    with serving_agent(agent) as url:
        yield url, agent
        agent.released.set()


@pytest.fixture
async def agent(client: httpx.AsyncClient, agent_server: tuple[str, Agent]) -> Agent:
    url, mock = agent_server
    answer = (await client.put("/tenants/me/agent", json={"url": url})).json()
    mock.secret = answer["secret"]
    return mock


async def until(condition: object) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - polling
            await asyncio.sleep(0.02)


async def call_status(client: httpx.AsyncClient, call_id: str) -> dict:
    return (await client.get(f"/calls/{call_id}")).json()


async def test_a_call_added_to_a_minute_while_its_job_hands_over_still_rings(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, agent: Agent
) -> None:
    first = (await client.post("/calls", json={"name": "Ann", "phone": "212-555-0101"})).json()
    added = await client.post(
        "/calls",
        json={"name": "Bo", "phone": "212-555-0102", "scheduled": "2026-03-02T17:00:00Z"},
    )
    clock.set(datetime.fromisoformat(first["scheduled"]))
    agent.accept = 0  # the first request stays open: the job is busy handing it over
    running = asyncio.create_task(Dispatcher(runtime).run_pending())
    await until(lambda: len(agent.received) == 1)
    # Call now: into the minute whose job is running (no second job can be queued for it).
    moved = await client.post(f"/calls/{added.json()['id']}/dispatch")
    assert moved.status_code == 202, moved.text
    agent.released.set()
    await asyncio.wait_for(running, WAIT)
    assert agent.calls() == Counter({first["id"]: 1, added.json()["id"]: 1})
    minute = int(clock.now().timestamp()) // 60
    async with runtime.sessions() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == PLACE_MINUTE))).all()
    # The same job came back for it (the moved call's old minute still has its own).
    assert [job.status for job in jobs if job.payload["minute"] == minute] == ["done"]


async def test_a_worker_stopped_mid_minute_leaves_the_rest_to_the_retry_and_none_rings_twice(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, agent: Agent
) -> None:
    # Requests in flight when the worker stops are in doubt: held, never sent again.
    policy = {"messaging": {"in_doubt": "hold"}}
    assert (await client.patch("/tenants/me/policy", json=policy)).status_code == 200
    await set_calling_policy(client, max_calls_per_minute=20)  # one call every 3 s
    results = (await client.post("/schedule", json=make_items(count=20))).json()
    first = datetime.fromisoformat(min(r["scheduled"] for r in results))
    clock.set(first + timedelta(seconds=30))  # 11 of the minute's 20 calls are due
    agent.accept = 4
    doomed = Dispatcher(runtime, lease=timedelta(seconds=30))
    running = asyncio.create_task(doomed.run_pending())
    await until(lambda: len(agent.received) == 11)
    running.cancel()  # the worker stops: nothing more of its run is committed
    await asyncio.gather(running, return_exceptions=True)
    agent.accept = None
    agent.released.set()
    clock.advance(timedelta(seconds=45))  # its lease ends; the rest of the minute is due
    await Dispatcher(runtime).run_pending()
    statuses = Counter()
    for result in results:
        call = await call_status(client, result["scheduled_task_id"])
        statuses[(call["status"], call["outcome"])] += 1
    assert set(agent.calls().values()) == {1}  # nobody twice
    assert len(agent.calls()) == 20  # everybody: 11 before the stop, 9 by the retry
    # The 7 requests open at the stop were received, but the worker never heard back.
    assert statuses == Counter({("dispatching", None): 13, ("failed", "unknown"): 7})


async def test_a_request_the_agent_refuses_for_now_is_tried_again_by_its_minute(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, agent: Agent
) -> None:
    call = (await client.post("/calls", json={"name": "Ann", "phone": "212-555-0101"})).json()
    clock.set(datetime.fromisoformat(call["scheduled"]))
    agent.accept, agent.then = 0, "refuse"
    await Dispatcher(runtime).run_pending()
    assert agent.calls() == Counter()
    assert (await call_status(client, call["id"]))["status"] == "dispatching"
    agent.accept = None
    clock.advance(timedelta(minutes=1))
    await Dispatcher(runtime).run_pending()
    assert agent.calls() == Counter({call["id"]: 1})
    async with runtime.sessions() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == PLACE_MINUTE))).all()
    assert [job.status for job in jobs] == ["done"]
