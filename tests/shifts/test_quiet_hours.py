"""Caregivers' quiet hours through the whole fan-out on a frozen clock: held offers, the
timeline's words, the urgent override, and a property over zones, ladders and start times
across both DST changes that nobody's phone rings or buzzes inside them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts.models import Caregiver
from tests.shifts.support import default_tenant_id, make_caregiver, phone
from tests.shifts.test_quiet_timing import DEFAULT, ZONES, is_quiet

TWO_AM_NEW_YORK = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


async def _shift(client: httpx.AsyncClient, shift_id: str, start: datetime, **extra: str) -> None:
    body = {
        "id": shift_id,
        "role_required": "RN",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=8)).isoformat(),
        **extra,
    }
    response = await client.post("/shifts", json=body)
    assert response.status_code == 201, response.text


async def _sent(runtime: Runtime, channel: str | None = None) -> list[Message]:
    statement = select(Message).where(Message.related_kind == "shifts.offer")
    statement = statement.where(Message.provider_id.is_not(None))
    if channel is not None:
        statement = statement.where(Message.channel == channel)
    async with runtime.sessions() as session:
        return list((await session.scalars(statement)).all())


@pytest.fixture
async def night(app: FastAPI, runtime: Runtime, clock: FrozenClock) -> str:
    """02:00 in New York; c1 and c2 have Boston phones, c3 is in Berlin (08:00 there)."""
    clock.set(TWO_AM_NEW_YORK)
    tenant = await default_tenant_id(runtime)
    for n in (1, 2, 3):
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    async with runtime.sessions.begin() as session:
        berlin = await session.get(Caregiver, (tenant, "c3"))
        assert berlin is not None
        berlin.tz = "Europe/Berlin"
    return tenant


async def test_a_round_at_night_is_held_until_eight_and_the_timeline_says_so(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    night: str,
) -> None:
    await _shift(client, "s1", TWO_AM_NEW_YORK + timedelta(hours=12))
    state = (await client.post("/shifts/s1/fanout")).json()
    assert state["rounds"][0]["by_message_status"] == {"held": 2, "queued": 1}
    await dispatcher.run_pending()
    assert [m.to_phone for m in await _sent(runtime)] == [phone(3)]  # Berlin is awake
    offers = [
        e
        for e in (await client.get("/shifts/s1/timeline")).json()["entries"]
        if e["kind"] == "offer"
    ]
    notes = {e["caregiver_id"]: e["details"].get("quiet_hours") for e in offers}
    assert notes == {
        "c1": "held until 08:00 local: quiet hours",
        "c2": "held until 08:00 local: quiet hours",
        "c3": None,
    }
    # The voice round at 02:10 is held too; c1 cannot answer a text she has not received.
    clock.advance(timedelta(minutes=10))
    await dispatcher.run_pending()
    assert [m.to_phone for m in await _sent(runtime, "voice")] == [phone(3)]
    assert (await client.post("/messages/inbound", json={"from": phone(1), "body": "yes"})).json()[
        "action"
    ] == "unmatched"
    clock.set(datetime(2026, 3, 2, 13, 0, tzinfo=UTC) - timedelta(microseconds=1))
    await dispatcher.run_pending()
    assert len(await _sent(runtime)) == 2
    clock.advance(timedelta(microseconds=1))
    await dispatcher.run_pending()
    sent = await _sent(runtime)
    assert sorted((m.to_phone, m.channel) for m in sent if m.to_phone != phone(3)) == [
        (phone(1), "sms"),
        (phone(1), "voice"),
        (phone(2), "sms"),
        (phone(2), "voice"),
    ]
    assert {m.sent_at for m in sent if m.to_phone != phone(3)} == {clock.now()}
    assert (await client.post("/messages/inbound", json={"from": phone(1), "body": "yes"})).json()[
        "action"
    ] == "assigned"


async def test_held_offers_go_to_nobody_once_the_shift_is_filled(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    night: str,
) -> None:
    await _shift(client, "s1", TWO_AM_NEW_YORK + timedelta(hours=12))
    await client.post("/shifts/s1/fanout")
    await dispatcher.run_pending()
    assert (
        await client.post("/messages/inbound", json={"from": phone(3), "body": "ja, yes"})
    ).json()["action"] == "assigned"
    clock.set(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    await dispatcher.run_pending()
    assert [m.to_phone for m in await _sent(runtime)] == [phone(3)]


async def test_urgent_shifts_override_quiet_hours_by_sms_only_when_the_tenant_says(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    night: str,
) -> None:
    soon = TWO_AM_NEW_YORK + timedelta(hours=3)  # 05:00 in New York: before quiet hours end
    await _shift(client, "early", soon)
    await client.post("/shifts/early/fanout")
    await dispatcher.run_pending()
    assert [m.to_phone for m in await _sent(runtime)] == [phone(3)]
    timeline = (await client.get("/shifts/early/timeline")).json()["entries"]
    [skipped] = [e for e in timeline if e["kind"] == "quiet_hours"]
    assert skipped["details"]["not_offered"] == 2

    urgent = {"shifts": {"urgent_overrides_quiet": True}}
    assert (await client.patch("/tenants/me/policy", json=urgent)).status_code == 200
    await _shift(client, "urgent", soon + timedelta(hours=1))
    await client.post("/shifts/urgent/fanout")
    await dispatcher.run_pending()
    clock.advance(timedelta(minutes=10))
    await dispatcher.run_pending()
    urgent_sent = [m for m in await _sent(runtime) if "Mon Mar 2, 6:00 AM" in m.body]
    assert sorted((m.to_phone, m.channel) for m in urgent_sent) == [
        (phone(1), "sms"),
        (phone(2), "sms"),
        (phone(3), "sms"),
        (phone(3), "voice"),
    ]


# --- the property: the whole product, many zones, ladders and start times ---------------

_example = itertools.count()
ladders = st.lists(
    st.tuples(st.sampled_from(("sms", "voice")), st.integers(0, 12 * 60)),
    min_size=1,
    max_size=3,
).map(lambda rounds: sorted(rounds, key=lambda r: r[1]))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    ladder=ladders,
    day=st.sampled_from([datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)]),
    fanout_minute=st.integers(-1440, 1440),
    starts_in=st.integers(30, 36 * 60),
)
async def test_nobody_is_contacted_inside_quiet_hours(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    app: FastAPI,
    zone: str,
    ladder: list[tuple[str, int]],
    day: datetime,
    fanout_minute: int,
    starts_in: int,
) -> None:
    n = next(_example)
    tenant = await default_tenant_id(runtime)
    rounds = [{"channel": c, "after": f"{m}m"} for c, m in ladder]
    assert (
        await client.patch("/tenants/me/policy", json={"shifts": {"escalation": rounds}})
    ).status_code == 200
    started = clock.set(day + timedelta(minutes=fanout_minute))
    caregiver = await make_caregiver(
        runtime, tenant_id=tenant, id=f"q{n}", roles=["RN"], n=1000 + n
    )
    async with runtime.sessions.begin() as session:
        row = await session.get(Caregiver, (tenant, caregiver))
        assert row is not None
        row.tz = zone
    await _shift(client, f"p{n}", started + timedelta(minutes=starts_in))
    assert (await client.post(f"/shifts/p{n}/fanout")).status_code == 202
    await _run_until_quiet(runtime, clock, dispatcher, until=started + timedelta(days=3))
    for message in await _sent(runtime):
        assert message.sent_at is not None
        if message.to_phone == phone(1000 + n):
            assert not is_quiet(message.sent_at, zone, DEFAULT), (message.channel, message.sent_at)


async def _run_until_quiet(
    runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher, *, until: datetime
) -> None:
    """Move the clock to each job as it falls due, running it, until none is left."""
    while True:
        await dispatcher.run_pending()
        async with runtime.sessions() as session:
            due = await session.scalar(select(func.min(Job.run_at)).where(Job.status == "queued"))
        if due is None or due > until:
            return
        clock.set(max(due, clock.now()))
