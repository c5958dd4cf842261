"""Statuses only move forward; every event is kept in arrival order; listeners hear changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import transaction
from caretime.messaging import Message, RelatedEntity, on_status_change
from caretime.messaging.statuses import moves_forward
from caretime.messaging.tracking import record_event, remove_status_listener
from caretime.runtime import Runtime
from tests.messaging.support import default_tenant_id, events_of, load_message, make_message

HEARD: list[tuple[str, str, bool]] = []


async def _listener(session: AsyncSession, message: Message, status: str) -> None:
    HEARD.append((message.related_id or "", status, session.in_transaction()))


@pytest.fixture(autouse=True)
def listening() -> Iterator[None]:
    HEARD.clear()
    on_status_change("tests.offer")(_listener)
    yield
    remove_status_listener("tests.offer", _listener)


@pytest.mark.parametrize(
    ("channel", "current", "new", "applied"),
    [
        ("sms", "queued", "sent", True),
        ("sms", "sent", "delivered", True),
        ("sms", "queued", "delivered", True),
        ("sms", "delivered", "sent", False),
        ("sms", "delivered", "failed", False),
        ("sms", "sent", "sent", False),
        ("sms", "suppressed", "sent", False),
        ("voice", "queued", "ringing", True),
        ("voice", "ringing", "in_progress", True),
        ("voice", "in_progress", "ringing", False),
        ("voice", "ringing", "no_answer", True),
        ("voice", "completed", "in_progress", False),
        ("voice", "busy", "completed", False),
        ("voice", "queued", "delivered", False),
        ("sms", "queued", "ringing", False),
    ],
)
def test_forward_only(channel: str, current: str, new: str, applied: bool) -> None:
    assert moves_forward(channel, current, new) is applied


async def _feed(runtime: Runtime, message_id: str, statuses: list[str]) -> None:
    for status in statuses:
        async with transaction(runtime.sessions) as session:
            message = await session.get(Message, message_id)
            assert message is not None
            await record_event(
                session,
                message,
                source="tests",
                status=status,
                provider_status=status,
                raw={"status": status},
                now=runtime.clock.now(),
            )


async def test_out_of_order_events_never_move_status_back(runtime: Runtime, app: Any) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(
        runtime, tenant_id=tenant_id, related=RelatedEntity(kind="tests.offer", id="O1")
    )
    await _feed(runtime, message.id, ["delivered", "sent", "queued", "failed"])
    assert (await load_message(runtime, message.id)).status == "delivered"
    events = await events_of(runtime, message.id)
    assert [(e.status, e.applied) for e in events] == [
        ("delivered", True),
        ("sent", False),
        ("queued", False),
        ("failed", False),
    ]
    assert HEARD == [("O1", "delivered", True)]


async def test_listeners_hear_each_change_for_their_kind_only(runtime: Runtime, app: Any) -> None:
    tenant_id = await default_tenant_id(runtime)
    mine = await make_message(
        runtime,
        tenant_id=tenant_id,
        key="a",
        channel="voice",
        related=RelatedEntity(kind="tests.offer", id="O2"),
    )
    other = await make_message(
        runtime, tenant_id=tenant_id, key="b", related=RelatedEntity(kind="tests.other", id="X")
    )
    await _feed(runtime, mine.id, ["ringing", "in_progress", "ringing", "completed"])
    await _feed(runtime, other.id, ["sent"])
    assert HEARD == [
        ("O2", "ringing", True),
        ("O2", "in_progress", True),
        ("O2", "completed", True),
    ]


async def test_a_failing_listener_rolls_back_the_change(runtime: Runtime, app: Any) -> None:
    tenant_id = await default_tenant_id(runtime)
    message = await make_message(
        runtime, tenant_id=tenant_id, related=RelatedEntity(kind="tests.broken", id="B")
    )

    async def broken(session: AsyncSession, message: Message, status: str) -> None:
        raise RuntimeError("listener failed")

    on_status_change("tests.broken")(broken)
    try:
        with pytest.raises(RuntimeError):
            await _feed(runtime, message.id, ["sent"])
    finally:
        remove_status_listener("tests.broken", broken)
    assert (await load_message(runtime, message.id)).status == "queued"
    assert await events_of(runtime, message.id) == []
