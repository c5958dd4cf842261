"""Answering a voice offer on the keypad through Twilio: the call goes over real HTTP to the
fake Twilio server (tests/fakes), asks for a key in a `<Gather>`, and the key comes back to
the signed `/webhooks/twilio/gather` webhook, which answers TwiML saying what it did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.fakes.support import (
    ACCOUNT,
    FROM,
    PUBLIC,
    TOKEN,
    FakeTwilioProcess,
    fake_twilio,
    twilio_settings,
)
from tests.shifts.support import (
    default_tenant_id,
    make_caregiver,
    make_shift,
    offer_messages,
    phone,
)

GATHER = "/webhooks/twilio/gather"
CONFIRMED = (
    "Confirmed: the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard is yours. Thank you!"
)


@pytest.fixture(scope="module")
def twilio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeTwilioProcess]:
    with fake_twilio(tmp_path_factory.mktemp("twilio")) as fake:
        yield fake


@pytest.fixture
def settings(database: Database, twilio_server: FakeTwilioProcess) -> Settings:
    twilio_server.reset()
    return twilio_settings(database.url, twilio_server)


@pytest.fixture
async def calls(
    app: FastAPI,
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
) -> dict[int, Message]:
    """Two RNs texted about s1 and, nobody answering, called through Twilio: n → the call."""
    tenant = await default_tenant_id(runtime)
    for n in (1, 2):
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    await dispatcher.run_pending()
    clock.advance(timedelta(minutes=10))
    await dispatcher.run_pending()
    return {
        n: c
        for c in await offer_messages(runtime, channel="voice")
        for n in (1, 2)
        if c.to_phone == phone(n)
    }


def _gather_path(call: Message, *, retry: bool = False) -> str:
    return f"{GATHER}?message_id={call.id}" + ("&retry=1" if retry else "")


async def _press(
    client: httpx.AsyncClient,
    call: Message,
    digits: str,
    *,
    retry: bool = False,
    token: str = TOKEN,
    **changes: str,
) -> httpx.Response:
    """What Twilio posts when a key is pressed during `call`, signed with `token`."""
    form = {
        "AccountSid": ACCOUNT,
        "CallSid": call.provider_id or "",
        "From": FROM,
        "To": call.to_phone,
        "Direction": "outbound-api",
        "Digits": digits,
        **changes,
    }
    path = _gather_path(call, retry=retry)
    signature = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def _said_and_hung_up(text: str) -> str:
    return f"<Response><Say>{text}</Say><Hangup /></Response>"


async def _shift(client: httpx.AsyncClient) -> tuple[str, str | None]:
    shift = (await client.get("/shifts/s1")).json()
    return shift["status"], shift["assigned_caregiver_id"]


async def test_the_call_asks_for_a_key_in_a_gather_and_never_for_a_text(
    twilio_server: FakeTwilioProcess, calls: dict[int, Message]
) -> None:
    [twiml] = [
        r["body"] for r in twilio_server.requests() if r["to"] == phone(1) and r["kind"] == "voice"
    ]
    offer = (
        "Hello, this is your agency's scheduling line with an open RN shift "
        "Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard. Press 1 to take the shift, or 2 to pass."
    )
    action = f"{PUBLIC}{_gather_path(calls[1])}"
    assert twiml == (
        f'<Response><Gather action="{action}" method="POST" numDigits="1" timeout="6">'
        f"<Say>{offer}</Say></Gather>"
        f'<Gather action="{action}&amp;retry=1" method="POST" numDigits="1" timeout="6">'
        f"<Say>{offer}</Say></Gather>"
        "<Say>We did not hear a choice. Goodbye.</Say><Hangup /></Response>"
    )
    assert "yes" not in twiml.lower()
    assert "text" not in twiml.lower()


async def test_pressing_1_takes_the_shift_and_the_caller_hears_it(
    twilio_server: FakeTwilioProcess,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    calls: dict[int, Message],
) -> None:
    response = await _press(client, calls[1], "1")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == _said_and_hung_up(CONFIRMED)
    assert await _shift(client) == ("filled", "c1")
    late = await _press(client, calls[2], "1")
    assert "has already been filled" in late.text
    assert await _shift(client) == ("filled", "c1")
    # The written copy goes out by SMS through Twilio too.
    await dispatcher.run_pending()
    texts = [
        r["body"] for r in twilio_server.requests() if r["kind"] == "sms" and r["to"] == phone(1)
    ]
    assert texts[-1] == CONFIRMED


async def test_pressing_2_passes(client: httpx.AsyncClient, calls: dict[int, Message]) -> None:
    response = await _press(client, calls[2], "2")
    assert response.text == _said_and_hung_up(
        "Thanks for letting us know; we won't offer you the shift "
        "Mon Mar 2, 2:00 PM–10:00 PM EST again."
    )
    assert await _shift(client) == ("open", None)


async def test_another_key_hears_the_prompt_once_more_then_goodbye(
    runtime: Runtime, client: httpx.AsyncClient, calls: dict[int, Message]
) -> None:
    again = await _press(client, calls[1], "7")
    assert again.status_code == 200
    action = f"{PUBLIC}{_gather_path(calls[1], retry=True)}".replace("&", "&amp;")
    assert again.text.startswith(
        f'<Response><Gather action="{action}" method="POST" numDigits="1" timeout="6">'
        "<Say>Sorry, that is not one of the choices. Hello, this is your agency"
    )
    assert again.text.count("<Gather") == 1
    assert again.text.endswith("<Say>We did not hear a choice. Goodbye.</Say><Hangup /></Response>")
    last = await _press(client, calls[1], "9", retry=True)
    assert last.text == _said_and_hung_up("Sorry, that is not one of the choices. Goodbye.")
    assert await _shift(client) == ("open", None)
    assert await _keypresses(runtime) == 0
    # The second prompt still takes a choice.
    assert "is yours" in (await _press(client, calls[1], "1", retry=True)).text


async def test_a_bad_signature_is_refused_and_changes_nothing(
    runtime: Runtime, client: httpx.AsyncClient, calls: dict[int, Message]
) -> None:
    forged = await _press(client, calls[1], "1", token="not-the-token")
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert forged.json()["type"].endswith("invalid-signature")
    unsigned = await client.post(_gather_path(calls[1]), data={"Digits": "1", "From": FROM})
    assert unsigned.status_code == 403
    assert await _shift(client) == ("open", None)
    assert await _keypresses(runtime) == 0


async def test_a_key_must_come_from_the_call_it_names(
    client: httpx.AsyncClient, calls: dict[int, Message]
) -> None:
    wrong_sid = await _press(client, calls[1], "1", CallSid="CA" + "9" * 32)
    assert wrong_sid.status_code == 404
    nobodys_number = await _press(client, calls[1], "1", From="+15550009999")
    assert nobodys_number.status_code == 404
    assert "no tenant owns" in nobodys_number.json()["detail"]
    assert await _shift(client) == ("open", None)


async def _keypresses(runtime: Runtime) -> int:
    statement = select(func.count()).where(
        Message.direction == "inbound", Message.channel == "voice"
    )
    async with runtime.sessions() as session:
        return int(await session.scalar(statement.select_from(Message)) or 0)
