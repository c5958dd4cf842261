"""Two worker processes on one PostgreSQL database deliver each event to each endpoint once
per attempt, in order per subject (one pump per endpoint, whichever process runs it)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from caretime.clock import FrozenClock
from caretime.dispatch.models import DispatchWorker
from caretime.events.webhooks.models import WebhookAttempt, WebhookDelivery
from caretime.runtime import Runtime
from tests.dispatch.test_processes import WAIT, Workers
from tests.dispatch.test_processes import workers as workers  # the fixture
from tests.events.receiver import running_receiver
from tests.events.support import add_endpoint, emit_now, tenant_id_of

pytestmark = pytest.mark.postgres_only
# Ten events per subject: order is checked over many turns of each endpoint's pump, which
# both processes race to run (240 events took most of a minute on a 2-core CI machine).
EVENTS, SUBJECTS = 120, 12


async def _count(runtime: Runtime, query: object) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def _until(runtime: Runtime, query: object, expected: int) -> None:
    async with asyncio.timeout(WAIT):
        while await _count(runtime, query) != expected:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.2)


async def test_two_processes_deliver_each_event_to_each_endpoint_once_in_order(
    client: httpx.AsyncClient,
    runtime: Runtime,
    workers: Workers,
    clock: FrozenClock,
) -> None:
    clock.set(datetime.now(UTC))  # the worker processes run on the system clock
    tenant_id = await tenant_id_of(client)
    with running_receiver() as receiver:
        paths = ["/one", "/two", "/three"]
        for path in paths:
            await add_endpoint(client, receiver.url(path))
        for _ in range(2):
            workers.start("--concurrency", "8")
        await _until(runtime, select(func.count()).select_from(DispatchWorker), 2)
        sent: list[tuple[str, str]] = []
        for n in range(EVENTS):
            clock.set(datetime.now(UTC))
            subject = f"s{n % SUBJECTS}"
            sent.append(
                (subject, await emit_now(runtime, tenant_id, "shift.filled", ("shift", subject)))
            )
        delivered = select(func.count()).where(WebhookDelivery.status == "delivered")
        await _until(runtime, delivered, EVENTS * len(paths))
        assert workers.stop_all() == [0, 0]
    for path in paths:
        got = receiver.at(path)
        assert Counter(Counter(r.headers["webhook-id"] for r in got).values()) == {1: EVENTS}
        arrived: dict[str, list[str]] = defaultdict(list)
        for r in sorted(got, key=lambda r: r.at):
            arrived[r.event["subject"]["id"]].append(r.event["id"])
        expected: dict[str, list[str]] = defaultdict(list)
        for subject, event_id in sent:
            expected[subject].append(event_id)
        assert arrived == expected
    # Every attempt that reached the receiver was answered once: none was sent twice by a race
    # (an attempt refused at connect, under load, is retried and counts as an attempt only).
    answered = select(func.count()).where(WebhookAttempt.status_code.is_not(None))
    assert await _count(runtime, answered) == EVENTS * 3 == len(receiver.received)
