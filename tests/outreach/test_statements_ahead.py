"""A large write's calls and `call.scheduled` events, their statements built in a worker
thread while the contacts are written (PostgreSQL): the same rows and events as built in turn,
and when the live-call index refuses a call after screening, events for the calls written
only."""

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from caretime.events.models import Event
from caretime.outreach import pipeline, writing
from caretime.outreach.events import call_data
from caretime.outreach.models import Call
from caretime.outreach.repository import CallRepository, LiveCall
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.outreach.support import make_items


@pytest.fixture(autouse=True)
def small_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 3 then 4 items, and every write of two calls or more built ahead."""
    monkeypatch.setattr(pipeline, "FIRST_CHUNK", 3)
    monkeypatch.setattr(pipeline, "CHUNK", 4)
    monkeypatch.setattr(pipeline, "INLINE_ITEMS", 5)
    monkeypatch.setattr(writing, "AHEAD_ROWS", 2)


@pytest.fixture
def events_ahead(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of events of each write recorded from statements built ahead."""
    recorded: list[int] = []
    emit_prepared = writing.emit_prepared

    async def noted(session: Any, tenant_id: str, events: Any, *, now: Any) -> None:
        recorded.append(len(events.ids))
        await emit_prepared(session, tenant_id, events, now=now)

    monkeypatch.setattr(writing, "emit_prepared", noted)
    return recorded


async def _calls_and_events(runtime: Runtime) -> tuple[list[Call], dict[str, list[Event]]]:
    async with runtime.sessions() as session:
        calls = list(await session.scalars(select(Call).order_by(Call.id)))
        events = await session.scalars(select(Event).where(Event.type == "call.scheduled"))
        by_call: dict[str, list[Event]] = {}
        for found in events:
            by_call.setdefault(found.subject_id, []).append(found)
        return calls, by_call


def _each_call_said_once(calls: Sequence[Call], events: dict[str, list[Event]]) -> None:
    """Every call has one `call.scheduled` event, its snapshot the call's, said by the API key;
    no event names another call."""
    assert set(events) == {call.id for call in calls}
    for call in calls:
        [said] = events[call.id]
        assert said.data == call_data(call)
        assert said.subject_kind == "call"
        assert said.actor.startswith("key:key_")


async def test_a_chunked_batch_has_one_scheduled_event_per_call_with_its_snapshot(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, events_ahead: list[int]
) -> None:
    """Ten items in three chunks (3, 4, 3): every call written once, with one event whose
    snapshot is the call's; on PostgreSQL every chunk's events came from statements built
    ahead (elsewhere none are)."""
    response = await client.post("/schedule", json=make_items(count=10, exchange=571))
    assert response.status_code == 200, response.text
    assert {answer["status"] for answer in response.json()} == {"scheduled"}
    calls, events = await _calls_and_events(runtime)
    assert len(calls) == 10
    _each_call_said_once(calls, events)
    assert events_ahead == ([3, 4, 3] if database.kind == "postgres" else [])


@pytest.mark.postgres_only
async def test_a_call_the_index_refuses_after_screening_gets_no_event(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    events_ahead: list[int],
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
    events_ahead.clear()
    items = make_items(count=4, exchange=573)
    items[1:1] = make_items(count=1, exchange=572)  # the live number, in the first chunk
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    statuses = [answer["status"] for answer in response.json()]
    assert statuses == ["scheduled", "rejected", "scheduled", "scheduled", "scheduled"]
    calls, events = await _calls_and_events(runtime)
    assert len(calls) == 5  # the first batch's call and four of the five
    assert live["scheduled_task_id"] in {call.id for call in calls}
    _each_call_said_once(calls, events)
    assert events_ahead == [2]  # the second chunk's two calls; the first chunk's rebuilt
