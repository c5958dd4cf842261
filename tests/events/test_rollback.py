"""A change that rolls back leaves no event (and no delivery) behind."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from caretime.booking import lifecycle
from caretime.db import transaction
from caretime.events.models import Event
from caretime.events.webhooks.models import WebhookDelivery
from caretime.outreach import calls
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, make_reservation
from tests.events.support import add_endpoint, tenant_id_of


class Undo(Exception):
    """Raised after the change, inside its transaction."""


async def _count(runtime: Runtime, model: type) -> int:
    async with transaction(runtime.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _change_then_fail(runtime: Runtime, tenant_id: str, call_id: str, hold_id: str) -> None:
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        await calls.cancel(session, tenant_id, call_id, now=now)
        await lifecycle.move(session, tenant_id, hold_id, "confirmed", now=now)
        raise Undo


async def test_rolled_back_changes_leave_no_events_and_no_deliveries(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tenant_id = await tenant_id_of(client)
    await add_endpoint(client, "http://127.0.0.1:9/never-called")
    call = (await client.post("/calls", json={"name": "A", "phone": "212-555-0100"})).json()
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )
    hold = await make_reservation(client, slot_start="2026-03-03T16:00:00Z")
    before = (await _count(runtime, Event), await _count(runtime, WebhookDelivery))
    with pytest.raises(Undo):
        await _change_then_fail(runtime, tenant_id, call["id"], hold["id"])
    assert (await _count(runtime, Event), await _count(runtime, WebhookDelivery)) == before
    assert (await client.get(f"/calls/{call['id']}")).json()["status"] == "scheduled"
    assert before == (2, 2)  # call.scheduled and appointment.held, each with its delivery
