"""Twilio's inbound SMS webhook records the reply and answers at once; a dispatch job acts on
it, and the answer reaches the sender as an SMS through Twilio (a fake Twilio process on
loopback, spoken to over real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message, OptOut
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
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone

PATH = "/webhooks/twilio/sms"
NURSE = phone(1)  # Boston: mid-morning at the frozen clock, outside quiet hours
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.fixture(scope="module")
def twilio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeTwilioProcess]:
    """One fake for the module: each start is seconds of a busy machine's interpreter start."""
    with fake_twilio(tmp_path_factory.mktemp("twilio")) as fake:
        yield fake


@pytest.fixture
def twilio(twilio_server: FakeTwilioProcess) -> FakeTwilioProcess:
    twilio_server.reset()  # what earlier tests asked is forgotten
    return twilio_server


@pytest.fixture
def settings(database: Database, twilio: FakeTwilioProcess) -> Settings:
    return twilio_settings(database.url, twilio)


async def _text_us(client: httpx.AsyncClient, body: str, sid: str) -> httpx.Response:
    form = {"From": NURSE, "To": FROM, "Body": body, "MessageSid": sid, "AccountSid": ACCOUNT}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + PATH, form)
    return await client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})


async def _inbound_count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "inbound")
        )
    return int(count or 0)


def _texts_to_nurse(twilio: FakeTwilioProcess) -> list[str]:
    return [r["body"] for r in twilio.requests() if r["kind"] == "sms" and r["to"] == NURSE]


async def _open_shift(runtime: Runtime, client: httpx.AsyncClient) -> None:
    tenant_id = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant_id, id="ana", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant_id, id="s1", location="Ballard")
    assert (await client.post("/shifts/s1/fanout")).status_code == 202


async def test_the_webhook_answers_before_the_reply_is_acted_on(
    runtime: Runtime,
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    twilio: FakeTwilioProcess,
) -> None:
    await _open_shift(runtime, client)
    await dispatcher.run_pending()  # the offer goes out through Twilio
    answered = await _text_us(anon_client, "YES", "SMyes")
    assert (answered.status_code, answered.text) == (200, EMPTY_TWIML)
    assert answered.headers["content-type"].startswith("text/xml")
    assert (await client.get("/shifts/s1")).json()["status"] == "open"  # recorded, not yet acted

    await dispatcher.run_pending()  # routes the reply and queues the answer
    await dispatcher.run_pending()  # hands the answer to Twilio
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"]) == ("filled", "ana")
    [_offer, confirmation] = _texts_to_nurse(twilio)
    assert "Confirmed" in confirmation
    assert "Ballard" in confirmation


async def test_a_reply_twilio_delivers_twice_is_acted_on_once(
    runtime: Runtime,
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    twilio: FakeTwilioProcess,
) -> None:
    await _open_shift(runtime, client)
    await dispatcher.run_pending()
    # Twilio retries a webhook it thinks failed, even while the first is being answered.
    twins = await asyncio.gather(*(_text_us(anon_client, "YES", "SMtwice") for _ in range(2)))
    assert [r.status_code for r in twins] == [200, 200]
    await dispatcher.run_pending()
    assert (await _text_us(anon_client, "YES", "SMtwice")).status_code == 200  # after it ran
    await dispatcher.run_pending()
    await dispatcher.run_pending()
    assert await _inbound_count(runtime) == 1
    timeline = (await client.get("/shifts/s1/timeline")).json()["entries"]
    assert [e["kind"] for e in timeline].count("reply") == 1
    assert [e["kind"] for e in timeline].count("assigned") == 1
    assert len([body for body in _texts_to_nurse(twilio) if "Confirmed" in body]) == 1


async def test_stop_through_the_webhook_opts_out_and_is_confirmed_by_sms(
    runtime: Runtime,
    anon_client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    twilio: FakeTwilioProcess,
) -> None:
    assert (await _text_us(anon_client, "STOP", "SMstop")).status_code == 200
    await dispatcher.run_pending()
    assert (await _text_us(anon_client, "HELP", "SMhelp")).status_code == 200
    await dispatcher.run_pending()
    await dispatcher.run_pending()
    async with runtime.sessions() as session:
        opted = set(await session.scalars(select(OptOut.channel).where(OptOut.phone == NURSE)))
    assert opted == {"sms", "voice"}
    stop_reply, help_reply = _texts_to_nurse(twilio)
    assert "unsubscribed" in stop_reply
    assert "START" in stop_reply
    assert "STOP" in help_reply
