"""Bulk hand-over: `messaging.send_batch` sends each queued message of its chunk exactly once,
re-checks consent, and keeps each message's failure to that message."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.config import Settings
from caretime.db import transaction
from caretime.dispatch import enqueue
from caretime.dispatch.registry import JobContext, JobInfo
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import (
    Message,
    OutgoingMessage,
    RelatedEntity,
    StatusChanges,
    on_status_changes,
    send_messages,
)
from caretime.messaging.batch import MAX_ATTEMPTS, send_batch
from caretime.messaging.consent import set_opt_out
from caretime.messaging.models import MessageRow
from caretime.messaging.providers.base import (
    OutboundRequest,
    PermanentProviderError,
    PollRequest,
    SendOutcome,
    SendReceipt,
    StatusReport,
    TransientProviderError,
    send_each,
)
from caretime.messaging.providers.simulator import SimulatorProvider
from caretime.messaging.tracking import remove_bulk_status_listener
from caretime.runtime import Runtime
from tests.messaging.support import default_tenant_id, install_provider, jobs_of


class CountingSimulator(SimulatorProvider):
    """The simulator, remembering every message it was handed."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.handed: list[str] = []

    async def send_batch(self, requests: Sequence[OutboundRequest]) -> list[SendOutcome]:
        self.handed.extend(request.message_id for request in requests)
        return await super().send_batch(requests)


@dataclass
class FlakyProvider:
    """Sends one request at a time: numbers in `transient` fail that many times first,
    numbers in `permanent` always fail."""

    name: str = "simulator"
    from_number: str | None = "+15550001000"
    rate_per_second: float = 10_000.0
    transient: dict[str, int] = field(default_factory=dict)
    permanent: set[str] = field(default_factory=set)
    handed: list[str] = field(default_factory=list)

    async def send(self, request: OutboundRequest) -> SendReceipt:
        if request.to in self.permanent:
            raise PermanentProviderError("21211 invalid 'To' number")
        if self.transient.get(request.to, 0) > 0:
            self.transient[request.to] -= 1
            raise TransientProviderError("503 unavailable")
        self.handed.append(request.message_id)
        return SendReceipt(f"flaky-{request.message_id}", StatusReport("sent", "sent"))

    async def poll(self, request: PollRequest) -> StatusReport:
        return StatusReport(None)


@dataclass
class FlakyBatchProvider(FlakyProvider):
    """The same, accepting whole batches in one call (as the simulator does)."""

    async def send_batch(self, requests: Sequence[OutboundRequest]) -> list[SendOutcome]:
        return await send_each(self, requests)


def phone(i: int) -> str:
    return f"+1206555{i:04d}"


async def queue(runtime: Runtime, count: int, *, channel: str = "sms") -> list[Message]:
    tenant_id = await default_tenant_id(runtime)
    outgoing = [
        OutgoingMessage(channel, phone(i), "Open shift. Reply YES.", f"bulk:{channel}:{i}")
        for i in range(count)
    ]
    async with transaction(runtime.sessions) as session:
        return await send_messages(session, tenant_id=tenant_id, outgoing=outgoing)


async def statuses(runtime: Runtime) -> dict[str, Message]:
    async with runtime.sessions() as session:
        return {m.to_phone: m for m in (await session.scalars(select(Message))).all()}


async def test_a_bulk_send_hands_each_message_over_exactly_once(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    simulator = CountingSimulator(runtime.settings)
    install_provider(runtime, simulator)
    queued = await queue(runtime, 450)
    batches = await jobs_of(runtime, "messaging.send_batch")
    assert [len(job.payload["message_ids"]) for job in batches] == [200, 200, 50]
    assert await jobs_of(runtime, "messaging.send") == []
    await dispatcher.run_pending()
    assert Counter(simulator.handed) == Counter(m.id for m in queued)
    messages = await statuses(runtime)
    assert {m.status for m in messages.values()} == {"sent"}
    assert len({m.provider_id for m in messages.values()}) == 450
    assert all(m.provider_id is not None for m in messages.values())
    inbox = await client.get("/simulator/messages", params={"to": phone(7)})
    assert [m["body"] for m in inbox.json()["items"]] == ["Open shift. Reply YES."]
    polls = await jobs_of(runtime, "messaging.poll_batch")
    assert sorted(len(job.payload["message_ids"]) for job in polls) == [50, 200, 200]
    assert {job.run_at for job in polls} == {runtime.clock.now() + timedelta(seconds=2)}
    assert await jobs_of(runtime, "messaging.poll") == []
    runtime.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    await dispatcher.run_pending()
    assert {m.status for m in (await statuses(runtime)).values()} == {"delivered"}
    assert len(simulator.handed) == 450


@dataclass
class QuietBatchProvider(FlakyBatchProvider):
    """Accepts every message but reports no status yet (its first report comes later)."""

    async def send(self, request: OutboundRequest) -> SendReceipt:
        self.handed.append(request.message_id)
        return SendReceipt(f"quiet-{request.message_id}", StatusReport(None))


async def test_a_hand_over_without_a_status_still_records_the_provider_id(
    runtime: Runtime, app: object, dispatcher: Dispatcher
) -> None:
    provider = QuietBatchProvider()
    install_provider(runtime, provider)
    queued = await queue(runtime, 30)
    await dispatcher.run_pending()
    assert Counter(provider.handed) == Counter(m.id for m in queued)
    messages = (await statuses(runtime)).values()
    assert {m.status for m in messages} == {"queued"}
    assert {m.provider_id for m in messages} == {f"quiet-{m.id}" for m in queued}
    assert all(m.sent_at is not None and m.from_phone == "+15550001000" for m in messages)
    await dispatcher.run_pending()  # handed over means never handed over again
    assert len(provider.handed) == 30


async def test_bulk_calls_walk_their_timelines_in_batches(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    await queue(runtime, 40, channel="voice")
    await dispatcher.run_pending()
    seen = []
    for seconds in (1, 5, 30):
        runtime.clock.advance(timedelta(seconds=seconds))  # type: ignore[attr-defined]
        await dispatcher.run_pending()
        seen.append({m.status for m in (await statuses(runtime)).values()})
    assert seen == [{"ringing"}, {"in_progress"}, {"completed"}]
    assert await jobs_of(runtime, "messaging.poll") == []
    assert len(await jobs_of(runtime, "messaging.poll_batch")) == 3


def test_a_message_row_has_the_columns_of_messages_in_their_order() -> None:
    """Batch jobs build rows positionally from `SELECT messages.*`."""
    columns = [column.key for column in Message.__table__.columns]
    assert [field.name for field in dataclasses.fields(MessageRow)] == columns


async def test_bulk_listeners_hear_a_batch_in_one_call(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    heard: list[list[tuple[str, str]]] = []

    async def listener(session: AsyncSession, changes: StatusChanges) -> None:
        # Message objects holding what the batch recorded (the job itself works on rows).
        assert all(isinstance(message, Message) for message, _ in changes)
        assert all(m.status == status and m.provider_id for m, status in changes)
        heard.append([(message.related_id or "", status) for message, status in changes])

    tenant_id = await default_tenant_id(runtime)
    outgoing = [
        OutgoingMessage("sms", phone(i), "hi", f"k:{i}", RelatedEntity("tests.bulk", f"R{i}"))
        for i in range(30)
    ]
    async with transaction(runtime.sessions) as session:
        await send_messages(session, tenant_id=tenant_id, outgoing=outgoing)
    on_status_changes("tests.bulk")(listener)
    try:
        await dispatcher.run_pending()
    finally:
        remove_bulk_status_listener("tests.bulk", listener)
    [batch] = heard
    assert sorted(batch) == sorted((f"R{i}", "sent") for i in range(30))


async def test_numbers_opted_out_while_queued_are_suppressed(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    simulator = CountingSimulator(runtime.settings)
    install_provider(runtime, simulator)
    queued = await queue(runtime, 20)
    tenant_id = await default_tenant_id(runtime)
    async with transaction(runtime.sessions) as session:
        for i in (3, 11):
            await set_opt_out(
                session,
                tenant_id,
                phone(i),
                ["sms"],
                opted_out=True,
                keyword="STOP",
                message_id=None,
                now=runtime.clock.now(),
            )
        await set_opt_out(
            session,
            tenant_id,
            phone(5),
            ["voice"],
            opted_out=True,
            keyword="STOP",
            message_id=None,
            now=runtime.clock.now(),
        )
    await dispatcher.run_pending()
    messages = await statuses(runtime)
    suppressed = {p for p, m in messages.items() if m.status == "suppressed"}
    assert suppressed == {phone(3), phone(11)}
    assert messages[phone(3)].suppression_reason == "sms opted out by the recipient"
    assert messages[phone(3)].provider_id is None
    assert sorted(simulator.handed) == sorted(m.id for m in queued if m.to_phone not in suppressed)


@pytest.mark.parametrize("provider_class", [FlakyProvider, FlakyBatchProvider])
async def test_only_the_messages_that_failed_transiently_are_retried(
    runtime: Runtime, app: Any, dispatcher: Dispatcher, provider_class: type[FlakyProvider]
) -> None:
    provider = provider_class(transient={phone(2): 1, phone(9): 2}, permanent={phone(4)})
    install_provider(runtime, provider)
    queued = await queue(runtime, 12)
    await dispatcher.run_pending()
    messages = await statuses(runtime)
    assert {p for p, m in messages.items() if m.status == "queued"} == {phone(2), phone(9)}
    failed = messages[phone(4)]
    assert (failed.status, failed.error) == ("failed", "21211 invalid 'To' number")
    assert sum(m.status == "sent" for m in messages.values()) == 9
    [first, retry] = await jobs_of(runtime, "messaging.send_batch")
    assert first.status == "done"
    assert retry.status == "queued"
    assert sorted(retry.payload["message_ids"]) == sorted(
        messages[p].id for p in (phone(2), phone(9))
    )
    assert retry.payload["attempt"] == 2
    assert retry.run_at == runtime.clock.now() + timedelta(seconds=5)
    runtime.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
    await dispatcher.run_pending()
    messages = await statuses(runtime)
    assert messages[phone(2)].status == "sent"
    assert messages[phone(9)].status == "queued"
    runtime.clock.advance(timedelta(seconds=10))  # type: ignore[attr-defined]
    await dispatcher.run_pending()
    messages = await statuses(runtime)
    assert {m.status for p, m in messages.items() if p != phone(4)} == {"sent"}
    assert Counter(provider.handed) == Counter(m.id for m in queued if m.to_phone != phone(4))


async def test_a_message_that_keeps_failing_is_failed_after_the_last_attempt(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    install_provider(runtime, FlakyProvider(transient={phone(1): 100}))
    await queue(runtime, 3)
    for _ in range(MAX_ATTEMPTS):
        await dispatcher.run_pending()
        runtime.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    messages = await statuses(runtime)
    given_up = messages[phone(1)]
    assert (given_up.status, given_up.error) == (
        "failed",
        f"gave up after {MAX_ATTEMPTS} attempts: 503 unavailable",
    )
    assert {messages[phone(0)].status, messages[phone(2)].status} == {"sent"}
    assert [job.status for job in await jobs_of(runtime, "messaging.send_batch")] == [
        "done"
    ] * MAX_ATTEMPTS


async def test_running_the_same_batch_again_sends_nothing_twice(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    simulator = CountingSimulator(runtime.settings)
    install_provider(runtime, simulator)
    queued = await queue(runtime, 30)
    [job] = await jobs_of(runtime, "messaging.send_batch")
    await dispatcher.run_pending()
    async with transaction(runtime.sessions) as session:
        await enqueue(
            session,
            "messaging.send_batch",
            job.payload,
            run_at=runtime.clock.now(),
            tenant_id=job.tenant_id,
        )
    await dispatcher.run_pending()
    assert [j.status for j in await jobs_of(runtime, "messaging.send_batch")] == ["done", "done"]
    assert Counter(simulator.handed) == Counter(m.id for m in queued)
    [poll] = await jobs_of(runtime, "messaging.poll_batch")
    assert sorted(poll.payload["message_ids"]) == sorted(m.id for m in queued)


@pytest.mark.postgres_only
async def test_two_concurrent_runs_of_one_batch_send_each_message_once(
    runtime: Runtime, app: Any
) -> None:
    simulator = CountingSimulator(runtime.settings)
    install_provider(runtime, simulator)
    queued = await queue(runtime, 200)
    [job] = await jobs_of(runtime, "messaging.send_batch")
    info = JobInfo(job.id, job.kind, job.tenant_id, 1, 5, job.run_at, job.created_at)

    async def run() -> None:
        async with transaction(runtime.sessions) as session:
            await send_batch(JobContext(session, runtime, info), job.payload)

    await asyncio.gather(*(run() for _ in range(4)))
    assert Counter(simulator.handed) == Counter(m.id for m in queued)
    [poll] = await jobs_of(runtime, "messaging.poll_batch")
    assert len(poll.payload["message_ids"]) == 200
