"""Several tenants on Twilio: each sends from its own number, and a reply reaches the tenant
that owns the number it was sent to (issue 20.1): a claim, a plain text and a STOP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.app import StartupRefused, prepare_database
from caretime.dispatch.worker import Dispatcher
from caretime.events.models import Event
from caretime.messaging.models import Message, OptOut
from caretime.runtime import Runtime
from tests.messaging.support import default_tenant_id, load_message, make_message
from tests.messaging.test_twilio import (
    FROM,
    SID,
    FakeTwilio,
    _post_signed,
    settings,  # noqa: F401 (the Twilio settings fixture)
    twilio,  # noqa: F401
)
from tests.support import TEST_API_KEY, bearer, make_tenant

FROM_B = "+15005550007"
CAREGIVER = "+16175550160"  # Boston: 10:00 local at the frozen clock, outside quiet hours
SHIFT = {"role_required": "RN", "start_time": "2026-03-02T20:00:00Z",
         "end_time": "2026-03-03T04:00:00Z"}  # fmt: skip


@pytest.fixture
async def tenant_b(app: FastAPI, client: httpx.AsyncClient, runtime: Runtime) -> dict[str, str]:
    tenant_id, key = await make_tenant(runtime, name="clinic-b")
    response = await client.put(
        "/tenants/me/numbers", json={"numbers": [FROM_B]}, headers=bearer(key)
    )
    assert (response.status_code, response.json()) == (200, {"numbers": [FROM_B]})
    return {"id": tenant_id, "key": key}


async def _open_shift(client: httpx.AsyncClient, key: str, shift_id: str) -> None:
    headers = bearer(key)
    caregiver = {"id": "cg", "name": "Shared Nurse", "phone": CAREGIVER, "roles": ["RN"]}
    assert (await client.post("/caregivers", json=caregiver, headers=headers)).status_code == 201
    shift = {**SHIFT, "id": shift_id}
    assert (await client.post("/shifts", json=shift, headers=headers)).status_code == 201
    assert (await client.post(f"/shifts/{shift_id}/fanout", headers=headers)).status_code < 300


async def _reply(
    client: httpx.AsyncClient, dispatcher: Dispatcher, to: str, body: str, sid: str
) -> None:
    """A reply through Twilio's webhook, then the job that acts on it."""
    form = {"From": CAREGIVER, "To": to, "Body": body, "MessageSid": sid, "AccountSid": SID}
    response = await _post_signed(client, "/webhooks/twilio/sms", form)
    assert response.status_code == 200, response.text
    await dispatcher.run_pending()


async def _inbound(runtime: Runtime, sid: str) -> Message:
    async with runtime.sessions() as session:
        found = await session.scalars(select(Message).where(Message.provider_id == sid))
        return found.one()


async def test_replies_land_in_the_tenant_owning_the_number(
    runtime: Runtime,
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    twilio: FakeTwilio,  # noqa: F811
    tenant_b: dict[str, str],
) -> None:
    await _open_shift(client, TEST_API_KEY, "shift-a")
    await _open_shift(client, tenant_b["key"], "shift-b")
    await dispatcher.run_pending()
    senders = sorted(form["From"][0] for _, form in twilio.requests)
    assert senders == sorted([FROM, FROM_B])  # each tenant's offer from its own number

    await _reply(anon_client, dispatcher, FROM_B, "YES", "SMyes")
    shift_a = (await client.get("/shifts/shift-a")).json()
    shift_b = (await client.get("/shifts/shift-b", headers=bearer(tenant_b["key"]))).json()
    assert (shift_a["status"], shift_b["status"]) == ("open", "filled")
    assert (await _inbound(runtime, "SMyes")).tenant_id == tenant_b["id"]

    await _reply(anon_client, dispatcher, FROM, "Running 10 min late, sorry", "SMtext")
    assert (await _inbound(runtime, "SMtext")).tenant_id == await default_tenant_id(runtime)

    await _reply(anon_client, dispatcher, FROM, "STOP", "SMstop")
    tenant_a = await default_tenant_id(runtime)
    async with runtime.sessions() as session:
        opted = set(await session.scalars(select(OptOut.tenant_id).where(OptOut.opted_out)))
    assert opted == {tenant_a}
    to_b = await make_message(runtime, tenant_id=tenant_b["id"], to=CAREGIVER, key="b-later")
    assert to_b.status == "queued"  # B's number got no STOP: B may still text them


async def test_a_reply_to_a_number_nobody_owns_is_refused(
    anon_client: httpx.AsyncClient,
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    form = {"From": CAREGIVER, "To": "+15005550099", "Body": "YES", "MessageSid": "SMx"}
    response = await _post_signed(anon_client, "/webhooks/twilio/sms", form)
    assert response.status_code == 404
    assert "no tenant owns" in response.json()["detail"]


async def test_a_number_belongs_to_one_tenant(
    runtime: Runtime,
    client: httpx.AsyncClient,
    tenant_b: dict[str, str],
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    taken = await client.put("/tenants/me/numbers", json={"numbers": [FROM, FROM_B]})
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    assert FROM_B in taken.json()["detail"]
    assert (await client.get("/tenants/me/numbers")).json() == {"numbers": [FROM]}
    async with runtime.sessions() as session:
        changes = await session.scalars(
            select(Event.data).where(Event.type == "tenant.numbers_changed")
        )
        assert {number for data in changes for number in data["numbers"]} == {FROM, FROM_B}
    bad = await client.put("/tenants/me/numbers", json={"numbers": ["not a number"]})
    assert bad.status_code == 422


async def test_a_tenant_without_a_number_sends_nothing_through_twilio(
    runtime: Runtime,
    app: Any,
    dispatcher: Dispatcher,
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    tenant_id, _ = await make_tenant(runtime, name="clinic-c")
    message = await make_message(runtime, tenant_id=tenant_id, to=CAREGIVER)
    await dispatcher.run_pending()
    failed = await load_message(runtime, message.id)
    assert failed.status == "failed"
    assert "owns none" in (failed.error or "")
    assert twilio.requests == []


async def test_twilio_with_tenants_sharing_a_number_refuses_to_start(
    runtime: Runtime,
    app: Any,
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    await make_tenant(runtime, name="clinic-c")
    with pytest.raises(StartupRefused) as refused:
        await prepare_database(runtime)
    message = str(refused.value)
    assert "\n" not in message
    assert "'clinic-c'" in message
    assert "PUT /tenants/me/numbers" in message
