"""A large write's calls and `call.scheduled` events, their statements built in a worker
thread while the contacts are written (PostgreSQL): the same rows and events as built in turn,
and when the live-call index refuses a call after screening, events for the calls written
only."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from caretime.events.models import Event
from caretime.events.webhooks.models import WebhookDelivery
from caretime.outreach import writing
from caretime.outreach.events import call_data
from caretime.outreach.models import Call, Contact, OutreachBatch
from caretime.outreach.repository import CallRepository, LiveCall
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.events.support import add_endpoint
from tests.outreach.support import checked_out, make_items, refusing_inserts, use_small_chunks


@pytest.fixture(autouse=True)
def small_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 3 then 4 items, and every write of two calls or more built ahead."""
    use_small_chunks(monkeypatch)
    monkeypatch.setattr(writing, "AHEAD_ROWS", 2)


@dataclass
class BuiltAhead:
    """Per write: whether its calls' statement was built ahead, and the number of events
    recorded from statements built ahead."""

    calls: list[bool] = field(default_factory=list)
    events: list[int] = field(default_factory=list)


@pytest.fixture
def built_ahead(monkeypatch: pytest.MonkeyPatch) -> BuiltAhead:
    noted = BuiltAhead()
    emit_prepared, insert_new = writing.emit_prepared, CallRepository.insert_new

    async def events(session: Any, tenant_id: str, prepared: Any, *, now: Any) -> None:
        noted.events.append(len(prepared.ids))
        await emit_prepared(session, tenant_id, prepared, now=now)

    async def calls(self: CallRepository, columns: Any, shared: Any, **kwargs: Any) -> set[str]:
        noted.calls.append(kwargs.get("prepared") is not None)
        return await insert_new(self, columns, shared, **kwargs)

    monkeypatch.setattr(writing, "emit_prepared", events)
    monkeypatch.setattr(CallRepository, "insert_new", calls)
    return noted


@pytest.fixture
async def endpoint(client: httpx.AsyncClient) -> str:
    """A webhook endpoint that wants every call event: each event gets a delivery to it."""
    created = await add_endpoint(client, "https://example.com/hook", event_types=["call.*"])
    return str(created["id"])


async def _calls_and_events(runtime: Runtime) -> tuple[list[Call], dict[str, list[Event]]]:
    async with runtime.sessions() as session:
        calls = list(await session.scalars(select(Call).order_by(Call.id)))
        events = await session.scalars(select(Event).where(Event.type == "call.scheduled"))
        by_call: dict[str, list[Event]] = {}
        for found in events:
            by_call.setdefault(found.subject_id, []).append(found)
        return calls, by_call


async def _delivered(runtime: Runtime) -> list[tuple[str, int]]:
    """(endpoint, event seq) of every webhook delivery."""
    async with runtime.sessions() as session:
        rows = await session.execute(select(WebhookDelivery.endpoint_id, WebhookDelivery.event_seq))
        return [(endpoint, seq) for endpoint, seq in rows.all()]


def _each_call_said_once(calls: Sequence[Call], events: dict[str, list[Event]]) -> None:
    """Every call has one `call.scheduled` event, its snapshot the call's, said by the API key;
    no event names another call."""
    assert set(events) == {call.id for call in calls}
    for call in calls:
        [said] = events[call.id]
        assert said.data == call_data(call)
        assert said.subject_kind == "call"
        assert said.actor.startswith("key:key_")


def _each_event_delivered_once(
    events: dict[str, list[Event]], deliveries: list[tuple[str, int]], endpoint: str
) -> None:
    assert sorted(deliveries) == sorted((endpoint, e.seq) for said in events.values() for e in said)


async def test_a_chunked_batch_has_one_scheduled_event_per_call_with_its_snapshot(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    built_ahead: BuiltAhead,
    endpoint: str,
) -> None:
    """Ten items in three chunks (3, 4, 3): every call written once, with one event whose
    snapshot is the call's and one webhook delivery of it; on PostgreSQL every chunk's calls
    and events came from statements built ahead (elsewhere none did)."""
    response = await client.post("/schedule", json=make_items(count=10, exchange=571))
    assert response.status_code == 200, response.text
    assert {answer["status"] for answer in response.json()} == {"scheduled"}
    calls, events = await _calls_and_events(runtime)
    assert len(calls) == 10
    _each_call_said_once(calls, events)
    _each_event_delivered_once(events, await _delivered(runtime), endpoint)
    ahead = database.kind == "postgres"
    assert built_ahead.calls == [ahead] * 3
    assert built_ahead.events == ([3, 4, 3] if ahead else [])


@pytest.mark.postgres_only
async def test_a_call_the_index_refuses_after_screening_gets_no_event(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    built_ahead: BuiltAhead,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A number whose live call the screening does not see (as when a concurrent batch wrote
    it after the screening read): the chunk's plain INSERT is refused by the live-call index,
    the calls go again with ON CONFLICT, and the events built ahead for all of them are not
    used: the chunk's events are those of the calls written, the refused one has none."""
    first = await client.post("/schedule", json=make_items(count=1, exchange=572))
    [live] = first.json()
    unseen: dict[tuple[str, str], LiveCall] = {}

    async def blind(
        self: CallRepository, by_contact: dict[str, str]
    ) -> tuple[set[str] | None, dict[tuple[str, str], LiveCall]]:
        known, _ = await original(self, by_contact)
        return known, unseen

    original = CallRepository.known_and_live
    monkeypatch.setattr(CallRepository, "known_and_live", blind)
    built_ahead.events.clear()
    items = make_items(count=4, exchange=573)
    items[1:1] = make_items(count=1, exchange=572)  # the live number, in the first chunk
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    answers = response.json()
    statuses = [answer["status"] for answer in answers]
    assert statuses == ["scheduled", "rejected", "scheduled", "scheduled", "scheduled"]
    assert f"already has a scheduled call {live['scheduled_task_id']}" in answers[1]["error"]
    calls, events = await _calls_and_events(runtime)
    assert len(calls) == 5  # the first batch's call and four of the five
    assert live["scheduled_task_id"] in {call.id for call in calls}
    _each_call_said_once(calls, events)
    _each_event_delivered_once(events, await _delivered(runtime), endpoint)
    assert built_ahead.events == [2]  # the second chunk's two calls; the first chunk's rebuilt


@pytest.mark.postgres_only
@pytest.mark.parametrize("failing", ["the contacts' insert", "the statements' build"])
async def test_either_side_failing_leaves_nothing_of_the_batch(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    built_ahead: BuiltAhead,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """The contacts' INSERT refused while the thread builds the calls' and events' statements,
    or the build failing while the contacts are written: the batch fails whole (500, a
    problem document), nothing of it is left, and no connection is kept."""
    items = make_items(count=10, exchange=574)
    if failing == "the contacts' insert":
        items[4]["name"] = "refused"  # the second chunk (3-6)
    else:

        def broken(*_: Any, **__: Any) -> None:
            raise RuntimeError("a build failing in a test")

        monkeypatch.setattr(writing._Ahead, "build", broken)
    before = checked_out(runtime)
    async with refusing_inserts(runtime, "contacts"):
        response = await client.post("/schedule", json=items)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert checked_out(runtime) == before
    async with runtime.sessions() as session:
        for model in (Call, Contact, OutreachBatch, Event):
            assert await session.scalar(select(func.count()).select_from(model)) == 0
