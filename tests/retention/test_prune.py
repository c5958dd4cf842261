"""The prune deletes exactly what each tenant's retention policy lets go, and a dry run
counts the same rows without deleting them."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.events.models import Event
from caretime.messaging.models import Message
from caretime.outreach.models import Call
from caretime.retention.prune import prune
from caretime.runtime import Runtime
from tests.events.support import emit_now, tenant_id_of


async def _counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:

        async def count(model: type, *where: object) -> int:
            return int(
                await session.scalar(select(func.count()).select_from(model).where(*where)) or 0
            )  # type: ignore[arg-type]

        return {
            "finished_jobs": await count(Job, Job.status.in_(("done", "failed", "cancelled"))),
            "queued_jobs": await count(Job, Job.status == "queued"),
            "events": await count(Event),
            "messages": await count(Message),
            "calls": await count(Call),
        }


async def _prune(runtime: Runtime) -> dict[str, int]:
    """Dry run first: it must announce exactly what the prune then deletes."""
    now = runtime.clock.now()
    planned = {f.table: f.rows for f in await prune(runtime, now=now, dry_run=True)}
    done = {f.table: f.rows for f in await prune(runtime, now=now)}
    assert planned == done
    return done


async def test_prune_removes_only_what_the_policy_allows(
    client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, clock: FrozenClock
) -> None:
    tenant_id = await tenant_id_of(client)
    cancelled = (
        await client.post(
            "/calls",
            json={"name": "A", "phone": "212-555-0100", "scheduled": "2026-03-02T16:00:00Z"},
        )
    ).json()
    await client.delete(f"/calls/{cancelled['id']}")
    await client.post("/messages/inbound", json={"from": "212-555-0101", "body": "HELP"})
    await dispatcher.run_pending()  # sends the reply: a finished job
    later = await client.post("/calls", json={"name": "B", "phone": "212-555-0102",
                                              "scheduled": "2026-03-13T16:00:00Z"})  # fmt: skip
    assert later.status_code == 201, later.text
    start = await _counts(runtime)
    assert start["finished_jobs"] >= 1
    assert start["queued_jobs"] >= 1

    clock.advance(timedelta(days=6))
    assert await _prune(runtime) == {}  # nothing is old enough yet
    clock.advance(timedelta(days=2))
    recent = await emit_now(runtime, tenant_id, "shift.filled", ("shift", "s1"))
    assert await _prune(runtime) == {"finished_jobs": start["finished_jobs"]}
    assert (await _counts(runtime))["queued_jobs"] == start[
        "queued_jobs"
    ]  # a job still to run is never pruned

    clock.advance(timedelta(days=393))  # the first day's events and messages are 401 days old
    assert await _prune(runtime) == {"events": start["events"], "messages": start["messages"]}
    async with runtime.sessions() as session:
        assert [e.id for e in (await session.scalars(select(Event))).all()] == [recent]
    assert (await _counts(runtime))["calls"] == 2  # ended calls are kept by default

    policy = await client.patch("/tenants/me/policy", json={"retention": {"ended_calls": "30d"}})
    assert policy.status_code == 200, policy.text
    assert await _prune(runtime) == {"ended_calls": 1}
    async with runtime.sessions() as session:
        assert (await session.scalars(select(Call.id))).all() == [later.json()["id"]]


async def test_ended_series_go_with_ended_calls_and_active_ones_stay(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    def series(phone: str) -> dict[str, object]:
        return {"name": "A", "phone": phone, "scheduled": "2026-03-02T16:00:00Z",
                "recurrence": "FREQ=WEEKLY;BYDAY=MO;COUNT=3"}  # fmt: skip

    ended = (await client.post("/calls", json=series("212-555-0110"))).json()
    active = (await client.post("/calls", json=series("212-555-0111"))).json()
    cancel = await client.post(f"/calls/series/{ended['series_id']}/cancel")
    assert cancel.status_code == 200, cancel.text
    clock.advance(timedelta(days=31))
    assert await _prune(runtime) == {}  # ended series are kept by default

    policy = await client.patch("/tenants/me/policy", json={"retention": {"ended_calls": "30d"}})
    assert policy.status_code == 200, policy.text
    # The cancelled series and its cancelled occurrence go; the active series stays.
    assert await _prune(runtime) == {"ended_calls": 1, "ended_series": 1}
    assert (await client.get(f"/calls/series/{ended['series_id']}")).status_code == 404
    assert (await client.get(f"/calls/series/{active['series_id']}")).status_code == 200
