"""Replies written together (messaging.desk): a batch answers each reply as it would have
been answered alone, in arrival order, and a reply that fails inside a batch fails alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, select

from caretime.dispatch.models import Job
from caretime.messaging import Message, OpenQuestion
from caretime.messaging.desk import ReplyDesk
from caretime.messaging.inbound import Inbound
from caretime.messaging.routing import routers
from caretime.runtime import Runtime
from caretime.shifts.models import Shift, ShiftEvent
from tests.shifts.support import (
    default_tenant_id,
    make_caregivers,
    make_offer,
    make_shift,
    phone,
)

CAREGIVERS = 12
STRANGER = "+16175550000"


async def offered(runtime: Runtime) -> str:
    tenant_id = await default_tenant_id(runtime)
    caregivers = await make_caregivers(runtime, tenant_id=tenant_id, count=CAREGIVERS, roles=["RN"])
    shift_id = await make_shift(runtime, tenant_id=tenant_id, id="s1")
    for caregiver_id in caregivers:
        await make_offer(runtime, tenant_id=tenant_id, shift_id=shift_id, caregiver_id=caregiver_id)
    return tenant_id


def body(n: int) -> str:
    return "no" if n % 3 == 0 else "yes"


async def test_a_batch_answers_each_reply_as_alone_in_arrival_order(
    app: FastAPI, runtime: Runtime
) -> None:
    tenant_id = await offered(runtime)
    desk = ReplyDesk(runtime.sessions, batches=1)
    replies = [Inbound(phone(n), body(n)) for n in range(CAREGIVERS)]
    replies.append(Inbound(STRANGER, "yes"))
    now = runtime.clock.now()
    # Handed over together: the desk's worker starts once every one is waiting.
    answers = await asyncio.gather(*(desk.receive(tenant_id, r, now=now) for r in replies))

    actions = [answer["action"] for answer in answers]
    # The first "yes" (caregiver 1) claims; the batch ends there and the rest follow.
    assert actions[1] == "assigned"
    assert Counter(actions) == {"declined": 4, "assigned": 1, "already_filled": 7, "unmatched": 1}
    async with runtime.sessions() as session:
        shift = await session.get(Shift, (tenant_id, "s1"))
        assert shift is not None
        assert (shift.status, shift.assigned_caregiver_id) == ("filled", "c0001")
        inbound = (
            await session.scalars(select(Message).where(Message.direction == "inbound"))
        ).all()
        assert {m.id: m.route_action for m in inbound} == {
            a["message_id"]: a["action"] for a in answers
        }
        sent = (await session.scalars(select(Message).where(Message.direction == "outbound"))).all()
        assert sorted(m.idempotency_key for m in sent) == sorted(f"reply:{m.id}" for m in inbound)
        trail = Counter((await session.scalars(select(ShiftEvent.kind))).all())
        assert (trail["reply"], trail["assigned"]) == (CAREGIVERS, 1)
        # The replies after the claim were one batch: their answers share one send job.
        jobs = (await session.scalars(select(Job).where(Job.kind == "messaging.send_batch"))).all()
        assert max(len(job.payload["message_ids"]) for job in jobs) > 1


class Exploding:
    """A router whose lookup fails for one number."""

    name = "exploding"

    async def open_question(
        self, session: Any, tenant_id: str, number: str, hint: dict[str, str]
    ) -> OpenQuestion | None:
        if number == phone(5):
            raise RuntimeError("this lookup fails")
        return None

    async def answer(self, *args: Any) -> Any:
        raise AssertionError("never asked")


@pytest.fixture
def exploding_router() -> Iterator[None]:
    routers.register(Exploding())  # type: ignore[arg-type]
    yield
    routers.remove(Exploding.name)


async def test_a_reply_that_fails_in_a_batch_fails_alone(
    app: FastAPI, runtime: Runtime, exploding_router: None
) -> None:
    tenant_id = await offered(runtime)
    desk = ReplyDesk(runtime.sessions, batches=1)
    replies = [Inbound(phone(n), "no") for n in range(CAREGIVERS)]
    now = runtime.clock.now()
    answers = await asyncio.gather(
        *(desk.receive(tenant_id, r, now=now) for r in replies), return_exceptions=True
    )

    failed = [n for n, answer in enumerate(answers) if isinstance(answer, BaseException)]
    assert failed == [5]
    assert all(a["action"] == "declined" for a in answers if isinstance(a, dict))
    async with runtime.sessions() as session:
        inbound = (
            await session.scalars(select(Message).where(Message.direction == "inbound"))
        ).all()
    # The batch rolled back and each reply ran again alone: every other one recorded once.
    assert sorted(m.from_phone for m in inbound) == sorted(
        phone(n) for n in range(CAREGIVERS) if n != 5
    )


async def test_a_number_s_repeated_replies_in_a_batch_read_its_question_once(
    app: FastAPI, runtime: Runtime
) -> None:
    tenant_id = await offered(runtime)
    desk = ReplyDesk(runtime.sessions, batches=1)
    hint = {"shift_id": "s1"}
    replies = [Inbound(phone(1), "no", hint=hint) for _ in range(4)]
    replies.append(Inbound(phone(1), "yes", hint=hint))
    offer_reads, answers = await _received_together(runtime, desk, tenant_id, replies)

    # A "no" changes nothing the question's lookup reads: the next reply answers the same
    # offer without reading it again, and decides as it would have alone.
    assert [answer["action"] for answer in answers] == ["declined"] * 4 + ["assigned"]
    assert len(offer_reads) == 1
    async with runtime.sessions() as session:
        shift = await session.get(Shift, (tenant_id, "s1"))
        assert shift is not None
        assert (shift.status, shift.assigned_caregiver_id) == ("filled", "c0001")
        replied = select(ShiftEvent.details).where(ShiftEvent.kind == "reply")
        trail = [details["action"] for details in (await session.scalars(replied)).all()]
        assert Counter(trail) == {"declined": 4, "assigned": 1}


async def test_a_reply_that_changes_something_makes_later_replies_read_their_question_again(
    app: FastAPI, runtime: Runtime
) -> None:
    # Caregiver 1's unclear answer keeps its question for its next reply; caregiver 2's STOP
    # changes consent in between, so caregiver 1's next reply reads its offer again, as it
    # would have alone (a change in between may have sent it a newer offer).
    tenant_id = await offered(runtime)
    desk = ReplyDesk(runtime.sessions, batches=1)
    hint = {"shift_id": "s1"}
    replies = [
        Inbound(phone(1), "what time?", hint=hint),
        Inbound(phone(2), "STOP"),
        Inbound(phone(1), "what time?", hint=hint),
    ]
    offer_reads, answers = await _received_together(runtime, desk, tenant_id, replies)

    assert [answer["action"] for answer in answers] == ["clarify", "opted_out", "clarify"]
    # One read by each of caregiver 1's replies, one by the opt-out (the number's offers).
    assert len(offer_reads) == 3


async def _received_together(
    runtime: Runtime, desk: ReplyDesk, tenant_id: str, replies: list[Inbound]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The replies handed to the desk together, their answers, and the reads of offers
    (SELECT ... FROM shift_offers) they cost."""
    offer_reads: list[str] = []

    def count_offer_reads(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT") and "FROM shift_offers" in statement:
            offer_reads.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count_offer_reads)
    try:
        now = runtime.clock.now()
        answers = await asyncio.gather(*(desk.receive(tenant_id, r, now=now) for r in replies))
    finally:
        event.remove(engine, "before_cursor_execute", count_offer_reads)
    return offer_reads, list(answers)
