"""The Twilio provider against a local fake of its REST API, and the signed webhooks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.messaging.providers import SERVICE_KEY, Providers
from caretime.messaging.providers.base import PollRequest
from caretime.messaging.routing import routers
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.messaging.support import (
    PHONE,
    FakeRouter,
    default_tenant_id,
    events_of,
    jobs_of,
    load_message,
    make_message,
)
from tests.support import TEST_API_KEY

SID, TOKEN, FROM = "AC0123456789abcdef", "twilio-test-token", "+15005550006"
PUBLIC = "https://caretime.example.org"
INVALID_TO = "+12065550111"
FLAKY_TO = "+12065550122"


class FakeTwilio:
    """Just enough of api.twilio.com: checks auth and form shape, answers like Twilio."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        expected = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return httpx.Response(401, json={"code": 20003, "message": "Authenticate"})
        if request.method == "GET":
            sid = request.url.path.rsplit("/", 1)[-1].removesuffix(".json")
            return httpx.Response(200, json={"sid": sid, "status": "delivered"})
        form = parse_qs(request.content.decode())
        self.requests.append((request.url.path, form))
        if form["To"] == [INVALID_TO]:
            return httpx.Response(
                400, json={"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}
            )
        if form["To"] == [FLAKY_TO]:
            return httpx.Response(503, headers={"Retry-After": "30"})
        kind = "SM" if request.url.path.endswith("/Messages.json") else "CA"
        return httpx.Response(
            201, json={"sid": f"{kind}{len(self.requests):032d}", "status": "queued"}
        )


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        api_key=TEST_API_KEY,
        workers=0,
        sms_provider="twilio",
        voice_provider="twilio",
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from=FROM,
        public_url=PUBLIC,
        twilio_base_url="https://twilio.fake",
    )


@pytest.fixture
def twilio(runtime: Runtime) -> FakeTwilio:
    fake = FakeTwilio()
    runtime.services[SERVICE_KEY] = Providers(runtime.settings, httpx.MockTransport(fake))
    return fake


@pytest.fixture
def shifts() -> Iterator[FakeRouter]:
    router = FakeRouter("tests.shifts")
    routers.register(router)
    yield router
    routers.remove(router.name)


def _signed(path: str, form: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return {"X-Twilio-Signature": signature}


async def _post_signed(
    client: httpx.AsyncClient, path: str, form: dict[str, str]
) -> httpx.Response:
    return await client.post(path, data=form, headers=_signed(path, form))


async def test_sms_is_posted_form_encoded_with_basic_auth_and_callback(
    runtime: Runtime, app: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime), body="Hi")
    await dispatcher.run_pending()
    [(path, form)] = twilio.requests
    assert path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert form == {
        "To": [PHONE],
        "From": [FROM],
        "Body": ["Hi"],
        "StatusCallback": [f"{PUBLIC}/webhooks/twilio/status?message_id={message.id}"],
    }
    sent = await load_message(runtime, message.id)
    assert (sent.status, sent.provider, sent.provider_id) == (
        "queued",
        "twilio",
        "SM" + "1".zfill(32),
    )


async def test_call_carries_twiml_and_callback_events(
    runtime: Runtime, app: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    await make_message(
        runtime, tenant_id=await default_tenant_id(runtime), channel="voice", body="Shift <open>"
    )
    await dispatcher.run_pending()
    [(path, form)] = twilio.requests
    assert path.endswith("/Calls.json")
    assert form["Twiml"] == ["<Response><Say>Shift &lt;open&gt;</Say></Response>"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


async def test_rejected_number_fails_with_twilios_reason(
    runtime: Runtime, app: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime), to=INVALID_TO)
    await dispatcher.run_pending()
    failed = await load_message(runtime, message.id)
    assert (failed.status, failed.error) == (
        "failed",
        "twilio error 21211: Invalid 'To' Phone Number",
    )


async def test_unavailable_twilio_is_retried_after_its_hint(
    runtime: Runtime, app: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime), to=FLAKY_TO)
    await dispatcher.run_pending()
    assert (await load_message(runtime, message.id)).status == "queued"
    assert len(twilio.requests) == 1
    [job] = await jobs_of(runtime, "messaging.send")
    assert (job.status, job.run_at) == ("queued", runtime.clock.now() + timedelta(seconds=30))


async def test_poll_fetches_the_resource(runtime: Runtime, twilio: FakeTwilio) -> None:
    provider = Providers(runtime.settings, httpx.MockTransport(twilio)).named("twilio")
    now = runtime.clock.now()
    request = PollRequest("msg_1", "t", "sms", PHONE, "sent", "SM42", None, now, now)
    report = await provider.poll(request)
    assert (report.status, report.provider_status, report.poll_at) == (
        "delivered",
        "delivered",
        None,
    )


async def test_status_callbacks_move_forward_only(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    sid = (await load_message(runtime, message.id)).provider_id or ""
    for status in ("delivered", "sent"):
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": SID, "To": PHONE}
        response = await _post_signed(client, "/webhooks/twilio/status", form)
        assert response.status_code == 204
    assert (await load_message(runtime, message.id)).status == "delivered"
    events = await events_of(runtime, message.id)
    assert [(e.source, e.provider_status, e.applied) for e in events][-2:] == [
        ("twilio", "delivered", True),
        ("twilio", "sent", False),
    ]
    assert "To" not in events[-1].payload


async def test_call_status_callbacks(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    message = await make_message(
        runtime, tenant_id=await default_tenant_id(runtime), channel="voice"
    )
    await dispatcher.run_pending()
    sid = (await load_message(runtime, message.id)).provider_id or ""
    for status in ("ringing", "in-progress", "no-answer"):
        form = {"CallSid": sid, "CallStatus": status, "AccountSid": SID}
        await _post_signed(client, "/webhooks/twilio/status", form)
    assert (await load_message(runtime, message.id)).status == "no_answer"


async def test_bad_or_missing_signature_is_rejected(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    sid = (await load_message(runtime, message.id)).provider_id or ""
    form = {"MessageSid": sid, "MessageStatus": "delivered"}
    forged = _signed("/webhooks/twilio/status", form, token="someone-elses-token")
    for headers in (forged, {}):
        response = await client.post("/webhooks/twilio/status", data=form, headers=headers)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
    tampered = await client.post(
        "/webhooks/twilio/status",
        data={**form, "MessageStatus": "failed"},
        headers=_signed("/webhooks/twilio/status", form),
    )
    assert tampered.status_code == 403
    assert (await load_message(runtime, message.id)).status == "queued"


async def test_unknown_sid_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, twilio: FakeTwilio
) -> None:
    form = {"MessageSid": "SMunknown", "MessageStatus": "delivered"}
    assert (await _post_signed(client, "/webhooks/twilio/status", form)).status_code == 204


async def test_inbound_sms_is_routed_and_recorded_once(
    runtime: Runtime,
    anon_client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    twilio: FakeTwilio,
    shifts: FakeRouter,
) -> None:
    shifts.ask(PHONE, "S1", runtime.clock.now())
    form = {"From": PHONE, "To": FROM, "Body": "Yes!", "MessageSid": "SMin1", "AccountSid": SID}
    for _ in range(2):  # Twilio retries a webhook it thinks failed
        response = await _post_signed(anon_client, "/webhooks/twilio/sms", form)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        assert "<Response>" in response.text
    await dispatcher.run_pending()
    assert [(ref, str(intent)) for ref, intent, _ in shifts.answered] == [("S1", "accept")]
    async with runtime.sessions() as session:
        inbound = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "inbound")
        )
    assert inbound == 1


async def test_inbound_stop_via_twilio_opts_out(
    runtime: Runtime, anon_client: httpx.AsyncClient, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    form = {"From": PHONE, "To": FROM, "Body": "STOP", "MessageSid": "SMin2"}
    await _post_signed(anon_client, "/webhooks/twilio/sms", form)
    await dispatcher.run_pending()
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime), key="later")
    assert message.status == "suppressed"


@pytest.mark.postgres_only
async def test_a_callback_before_the_send_commits_is_applied(
    runtime: Runtime, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    """Twilio may call back before our send job has stored its sid: the callback URL carries
    our message id, so it is applied, not dropped (issue 17.4). PostgreSQL only: on SQLite
    the send job holds the single write lock, so a callback waits for it to commit."""
    fake = FakeTwilio()
    seen: list[int] = []

    async def twilio_calling_back_at_once(request: httpx.Request) -> httpx.Response:
        answer = fake(request)
        callback = parse_qs(request.content.decode())["StatusCallback"][0]
        path = callback.removeprefix(PUBLIC)
        form = {"MessageSid": answer.json()["sid"], "MessageStatus": "delivered"}
        signature = RequestValidator(TOKEN).compute_signature(callback, form)
        response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        seen.append(response.status_code)
        return answer

    transport = httpx.MockTransport(twilio_calling_back_at_once)
    runtime.services[SERVICE_KEY] = Providers(runtime.settings, transport)
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    assert seen == [204]
    sent = await load_message(runtime, message.id)
    assert (sent.status, sent.provider_id) == ("delivered", "SM" + "1".zfill(32))
    events = await events_of(runtime, message.id)
    assert [(e.provider_status, e.applied) for e in events] == [
        ("delivered", True),
        ("queued", False),
    ]
