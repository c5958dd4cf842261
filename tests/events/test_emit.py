"""The events core: a row per change, in the change's transaction, with who acted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from caretime.db import transaction
from caretime.events import SYSTEM, acting_as, current_actor, emit, emit_many
from caretime.events.models import Event
from caretime.runtime import Runtime
from tests.support import make_tenant


async def _events(runtime: Runtime) -> list[Event]:
    async with transaction(runtime.sessions) as session:
        return list((await session.scalars(select(Event).order_by(Event.seq))).all())


async def _emit_then_fail(runtime: Runtime, tenant_id: str) -> None:
    async with transaction(runtime.sessions) as session:
        await emit(session, tenant_id=tenant_id, type="shift.cancelled", subject=("shift", "s1"),
                   data={}, now=runtime.clock.now())  # fmt: skip
        raise RuntimeError("the change fails after the event was written")


async def test_an_event_exists_exactly_when_its_change_commits(runtime: Runtime) -> None:
    tenant_id, _ = await make_tenant(runtime, name="acme")
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        await emit(session, tenant_id=tenant_id, type="shift.filled", subject=("shift", "s1"),
                   data={"status": "filled"}, now=now)  # fmt: skip
    with pytest.raises(RuntimeError):
        await _emit_then_fail(runtime, tenant_id)
    events = await _events(runtime)
    assert [(e.type, e.subject_kind, e.subject_id, e.actor) for e in events] == [
        ("shift.filled", "shift", "s1", SYSTEM)
    ]
    assert events[0].id.startswith("evt_")
    assert events[0].occurred_at == now


async def test_many_subjects_in_one_statement_keep_their_order_and_data(runtime: Runtime) -> None:
    tenant_id, _ = await make_tenant(runtime, name="acme")
    ids = [f"call_{n}" for n in range(5)]
    async with transaction(runtime.sessions) as session:
        with acting_as("key:key_1"):
            await emit_many(session, tenant_id=tenant_id, type="call.scheduled",
                            subjects=("call", ids), data=[{"n": n} for n in range(5)],
                            now=runtime.clock.now())  # fmt: skip
    events = await _events(runtime)
    assert [(e.subject_id, e.data, e.actor) for e in events] == [
        (f"call_{n}", {"n": n}, "key:key_1") for n in range(5)
    ]


async def test_an_unknown_type_is_a_programming_error(runtime: Runtime) -> None:
    tenant_id, _ = await make_tenant(runtime, name="acme")
    async with transaction(runtime.sessions) as session:
        with pytest.raises(ValueError, match="not in the catalogue"):
            await emit(session, tenant_id=tenant_id, type="shift.teleported",
                       subject=("shift", "s1"), data={}, now=runtime.clock.now())  # fmt: skip


def test_acting_as_is_scoped() -> None:
    assert current_actor() == SYSTEM
    with acting_as("inbound:msg_1"):
        assert current_actor() == "inbound:msg_1"
    assert current_actor() == SYSTEM
