"""The phone simulator page: what simulated phones received, and replies through the same
inbound service as POST /messages/inbound."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Intent, send_message
from caretime.messaging.keypad import keypad_context
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from tests.support import make_tenant
from tests.web.support import sign_in

PHONE = "+12065550123"


async def _text(
    runtime: Runtime, tenant_name: str, body: str, *, channel: str = "sms", **context: Any
) -> str:
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, tenant_name)
        message = await send_message(
            session, tenant_id=tenant.id, channel=channel, to=PHONE, body=body,
            idempotency_key=f"test:{body}", context=context or None,
        )  # fmt: skip
    return message.id


async def test_inbox_and_reply(
    anon_client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    await _text(runtime, "default", "Your visit is tomorrow at 9.")
    await _text(runtime, "default", "Calling about your visit.", channel="voice")
    await dispatcher.run_pending()
    token = await sign_in(anon_client)
    phones = (await anon_client.get("/ui/phone")).text
    assert f'href="/ui/phone/{quote(PHONE)}"' in phones
    inbox = (await anon_client.get(f"/ui/phone/{quote(PHONE)}")).text
    assert "Your visit is tomorrow at 9." in inbox
    assert "Call received" in inbox

    response = await anon_client.post(
        f"/ui/phone/{quote(PHONE)}/reply", data={"body": "help", "csrf_token": token}
    )
    assert response.headers["location"] == f"/ui/phone/{quote(PHONE)}?intent=help&action=help"
    await dispatcher.run_pending()
    thread = (await anon_client.get(f"/ui/phone/{quote(PHONE)}/thread")).text
    assert "You replied" in thread
    assert "Reply to our messages with YES or NO" in thread  # caretime's answer arrived


async def test_open_a_number_typed_any_way(anon_client: httpx.AsyncClient) -> None:
    await sign_in(anon_client)
    response = await anon_client.get("/ui/phone/go", params={"number": "(206) 555-0123"})
    assert response.headers["location"] == f"/ui/phone/{quote(PHONE)}"
    assert (await anon_client.get("/ui/phone/go", params={"number": "12"})).status_code == 422


async def test_phones_are_tenant_scoped(
    anon_client: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    await _text(runtime, "default", "For the default tenant only.")
    await dispatcher.run_pending()
    _, key = await make_tenant(runtime, name="other")
    await sign_in(anon_client, key=key)
    assert PHONE not in (await anon_client.get("/ui/phone")).text
    inbox = (await anon_client.get(f"/ui/phone/{quote(PHONE)}")).text
    assert "For the default tenant only." not in inbox


async def test_no_simulator_no_phones(anon_client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"sms_provider": "twilio", "voice_provider": "twilio"}
    )
    await sign_in(anon_client)
    response = await anon_client.get("/ui/phone")
    assert response.status_code == 404
    assert "simulator provider is not configured" in response.text


async def test_a_call_that_asks_for_a_key_shows_a_keypad_once_answered(
    anon_client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    choices = keypad_context({"1": Intent.accept, "2": Intent.decline})
    call_id = await _text(runtime, "default", "Press 1 or 2.", channel="voice", **choices)
    await dispatcher.run_pending()
    token = await sign_in(anon_client)
    ringing = (await anon_client.get(f"/ui/phone/{quote(PHONE)}")).text
    assert "Keypad: once the call is answered" in ringing
    clock.advance(timedelta(seconds=6))
    await dispatcher.run_pending()
    answered = (await anon_client.get(f"/ui/phone/{quote(PHONE)}")).text
    assert "Press 1 (accept)" in answered
    assert "Press 2 (decline)" in answered
    response = await anon_client.post(
        f"/ui/phone/{quote(PHONE)}/calls/{call_id}/digits",
        data={"digits": "1", "csrf_token": token},
    )
    # The call was about nothing a domain asked: the key is recorded, and matched to nothing.
    assert (
        response.headers["location"] == f"/ui/phone/{quote(PHONE)}?intent=accept&action=unmatched"
    )
    thread = (await anon_client.get(f"/ui/phone/{quote(PHONE)}/thread")).text
    assert "pressed 1" in thread
