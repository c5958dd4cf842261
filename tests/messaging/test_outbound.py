"""Sending: one row and one job per message, idempotent per tenant, consent checked first."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import (
    OutgoingMessage,
    RelatedEntity,
    queue_messages,
    send_message,
    send_messages,
)
from caretime.messaging.consent import set_opt_out
from caretime.messaging.models import Message
from caretime.runtime import Runtime
from tests.messaging.support import PHONE, default_tenant_id, jobs_of, load_message, make_message
from tests.support import make_tenant


async def test_send_writes_a_queued_row_and_one_job(runtime: Runtime, app: object) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(
        runtime, tenant_id=tenant_id, related=RelatedEntity(kind="shifts.offer", id="O1")
    )
    assert (message.status, message.direction, message.channel) == ("queued", "outbound", "sms")
    assert (message.related_kind, message.related_id) == ("shifts.offer", "O1")
    [job] = await jobs_of(runtime, "messaging.send")
    assert job.payload == {"message_id": message.id}
    assert job.tenant_id == tenant_id


async def test_same_key_twice_sends_once(
    runtime: Runtime, app: object, dispatcher: Dispatcher
) -> None:
    tenant_id = await default_tenant_id(runtime)
    first = await make_message(runtime, tenant_id=tenant_id, key="shift:S1:round:1:caregiver:C1")
    again = await make_message(
        runtime, tenant_id=tenant_id, key="shift:S1:round:1:caregiver:C1", body="different"
    )
    assert again.id == first.id
    assert len(await jobs_of(runtime, "messaging.send")) == 1
    await dispatcher.run_pending()
    # After it was sent, the same key still sends nothing.
    later = await make_message(runtime, tenant_id=tenant_id, key="shift:S1:round:1:caregiver:C1")
    assert later.id == first.id
    assert later.status == "sent"
    assert len(await jobs_of(runtime, "messaging.send")) == 1


async def test_keys_are_per_tenant(runtime: Runtime, app: object) -> None:
    tenant_id = await default_tenant_id(runtime)
    other_id, _ = await make_tenant(runtime, name="other agency")
    mine = await make_message(runtime, tenant_id=tenant_id, key="k")
    theirs = await make_message(runtime, tenant_id=other_id, key="k")
    assert mine.id != theirs.id


async def test_bulk_send_handles_thousands_with_duplicates(runtime: Runtime, app: object) -> None:
    tenant_id = await default_tenant_id(runtime)
    outgoing = [
        OutgoingMessage("sms", f"+1206555{i:04d}", "Open shift", f"fanout:{i}") for i in range(2500)
    ]
    async with transaction(runtime.sessions) as session:
        await send_message(
            session,
            tenant_id=tenant_id,
            channel="sms",
            to="+12065550007",
            body="earlier",
            idempotency_key="fanout:7",
        )
    async with transaction(runtime.sessions) as session:
        sent = await send_messages(session, tenant_id=tenant_id, outgoing=[*outgoing, outgoing[0]])
    assert len(sent) == 2501
    assert sent[0].id == sent[-1].id
    assert sent[7].body == "earlier"
    assert [m.to_phone for m in sent[:3]] == ["+12065550000", "+12065550001", "+12065550002"]
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2500
        jobs = (await session.scalars(select(Job).order_by(Job.id))).all()
    # The earlier single send has its own job; the 2,499 new messages go in chunks of 200.
    assert [job.kind for job in jobs] == ["messaging.send"] + ["messaging.send_batch"] * 13
    batched = [i for job in jobs[1:] for i in job.payload["message_ids"]]
    assert len(batched) == 2499
    assert set(batched) == {m.id for m in sent if m.body != "earlier"}
    assert max(len(job.payload["message_ids"]) for job in jobs[1:]) == 200


async def test_a_caller_may_choose_the_new_message_id_but_a_used_key_keeps_its_message(
    runtime: Runtime, app: object
) -> None:
    tenant_id = await default_tenant_id(runtime)
    first = OutgoingMessage("sms", PHONE, "Open shift", "offer:1", id="msg_chosen_1")
    async with transaction(runtime.sessions) as session:
        [queued] = await queue_messages(session, tenant_id=tenant_id, outgoing=[first])
    assert queued.id == "msg_chosen_1"
    assert (await load_message(runtime, "msg_chosen_1")).idempotency_key == "offer:1"
    again = OutgoingMessage("sms", PHONE, "Open shift", "offer:1", id="msg_chosen_2")
    async with transaction(runtime.sessions) as session:
        [repeated] = await queue_messages(session, tenant_id=tenant_id, outgoing=[again])
    assert repeated.id == "msg_chosen_1"
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1


async def test_numbers_are_stored_in_e164(runtime: Runtime, app: object) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(runtime, tenant_id=tenant_id, to="(206) 555-0100")
    assert message.to_phone == PHONE


async def test_undialable_number_fails_without_a_job(runtime: Runtime, app: object) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(runtime, tenant_id=tenant_id, to="not a number")
    assert message.status == "failed"
    assert message.error == "not a dialable phone number"
    assert await jobs_of(runtime, "messaging.send") == []


async def test_opted_out_number_is_suppressed_on_that_channel_only(
    runtime: Runtime, app: object
) -> None:
    tenant_id = await default_tenant_id(runtime)
    async with transaction(runtime.sessions) as session:
        await set_opt_out(
            session,
            tenant_id,
            PHONE,
            ["sms"],
            opted_out=True,
            keyword="STOP",
            message_id=None,
            now=runtime.clock.now(),
        )
    sms = await make_message(runtime, tenant_id=tenant_id, key="a")
    call = await make_message(runtime, tenant_id=tenant_id, key="b", channel="voice")
    assert (sms.status, sms.suppression_reason) == ("suppressed", "sms opted out by the recipient")
    assert call.status == "queued"
    [job] = await jobs_of(runtime, "messaging.send")
    assert job.payload["message_id"] == call.id


async def test_opt_out_after_queueing_suppresses_at_send_time(
    runtime: Runtime, app: object, dispatcher: Dispatcher
) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(runtime, tenant_id=tenant_id)
    async with transaction(runtime.sessions) as session:
        await set_opt_out(
            session,
            tenant_id,
            PHONE,
            ["sms"],
            opted_out=True,
            keyword="STOP",
            message_id=None,
            now=runtime.clock.now(),
        )
    await dispatcher.run_pending()
    stored = await load_message(runtime, message.id)
    assert stored.status == "suppressed"
    assert stored.provider_id is None


async def test_concurrent_sends_with_one_key_create_one_message(
    runtime: Runtime, app: object
) -> None:
    """Ten transactions race to send the same key: the unique key lets exactly one insert."""
    tenant_id = await default_tenant_id(runtime)

    async def send_once(i: int) -> str:
        async with transaction(runtime.sessions) as session:
            message = await send_message(
                session,
                tenant_id=tenant_id,
                channel="sms",
                to=PHONE,
                body=f"try {i}",
                idempotency_key="race",
            )
            return message.id

    ids = await asyncio.gather(*(send_once(i) for i in range(10)))
    assert len(set(ids)) == 1
    assert len(await jobs_of(runtime, "messaging.send")) == 1
