"""Voicemail: a machine answer is outcome voicemail, handled by the tenant's policy
(hang_up | leave_message | retry); the simulator answers with a machine for numbers ending
in CARETIME_SIMULATOR_MACHINE_DIGITS; Twilio uses asynchronous answering-machine detection."""

from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import MessageEvent
from caretime.messaging.providers import SERVICE_KEY, Providers
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.outreach.support import set_calling_policy
from tests.support import TEST_API_KEY

MACHINE = "212-555-0108"


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
        simulator_machine_digits="8",
    )  # fmt: skip


async def run_until_quiet(clock: FrozenClock, dispatcher: Dispatcher, seconds: int) -> None:
    for _ in range(seconds // 10):
        clock.advance(timedelta(seconds=10))
        await dispatcher.run_pending()


@pytest.mark.parametrize(
    ("policy", "status", "outcome", "attempts"),
    [
        ({"voicemail": "hang_up"}, "no_answer", "voicemail: hung up", 1),
        ({"voicemail": "leave_message", "callback_number": "+1 800 555 0100"},
         "completed", "voicemail: message left", 1),
        ({"voicemail": "retry"}, "scheduled", "voicemail", 1),
    ],
)  # fmt: skip
async def test_the_voicemail_policy_decides_what_a_machine_answer_means(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, runtime: Runtime,
    policy: dict, status: str, outcome: str, attempts: int,
) -> None:  # fmt: skip
    await set_calling_policy(client, **policy)
    call = (await client.post("/calls", json={"name": "Ann", "phone": MACHINE})).json()
    clock.advance(timedelta(seconds=1))
    await dispatcher.run_pending()
    await run_until_quiet(clock, dispatcher, 40)
    after = (await client.get(f"/calls/{call['id']}")).json()
    assert (after["status"], after["outcome"], after["attempts"]) == (status, outcome, attempts)
    async with runtime.sessions() as session:
        payloads = [e.payload for e in await session.scalars(select(MessageEvent))]
    left = [p["left_message"] for p in payloads if "left_message" in p]
    if policy["voicemail"] == "leave_message":
        assert left == [
            "Hello, this is a message from your care team. Please call us back at "
            "+1 800 555 0100. Thank you."
        ]
    else:
        assert left == []


async def test_retry_counts_as_an_attempt_until_they_are_spent(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    call = (
        await client.post(
            "/calls", json={"name": "Ann", "phone": MACHINE, "max_attempts": 2, "retry_delay": "1m"}
        )
    ).json()
    clock.advance(timedelta(seconds=1))
    await dispatcher.run_pending()
    await run_until_quiet(clock, dispatcher, 200)
    after = (await client.get(f"/calls/{call['id']}")).json()
    assert (after["status"], after["outcome"], after["attempts"]) == ("expired", "voicemail", 2)


async def test_leave_message_needs_a_callback_number(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/tenants/me/policy", json={"calling": {"voicemail": "leave_message"}}
    )
    assert response.status_code == 422
    assert "callback_number" in response.text


SID, TOKEN, PUBLIC = "AC1", "twilio-token", "https://caretime.example.org"


class FakeTwilio:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.url.path, parse_qs(request.content.decode())))
        return httpx.Response(201, json={"sid": "CA" + "1" * 32, "status": "queued"})


class TestTwilio:
    @pytest.fixture
    def settings(self, database: Database) -> Settings:
        return Settings(
            env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
            voice_provider="twilio", twilio_account_sid=SID, twilio_auth_token=TOKEN,
            twilio_from="+15005550006", twilio_base_url="https://twilio.fake", public_url=PUBLIC,
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("answered_by", "status", "action"),
        [
            ("machine_end_beep", "completed", "<Say>Hello, this is a message from your care"),
            ("human", "dispatching", None),
        ],
    )
    async def test_asynchronous_machine_detection(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock,
        dispatcher: Dispatcher, answered_by: str, status: str, action: str | None,
    ) -> None:  # fmt: skip
        twilio = FakeTwilio()
        runtime.services[SERVICE_KEY] = Providers(runtime.settings, httpx.MockTransport(twilio))
        await set_calling_policy(client, voicemail="leave_message", callback_number="800-555-0100")
        call = (await client.post("/calls", json={"name": "Ann", "phone": "212-555-0100"})).json()
        clock.advance(timedelta(seconds=1))
        await dispatcher.run_pending()
        (_, placed), *_ = twilio.requests
        assert placed["AsyncAmd"] == ["true"]
        assert placed["MachineDetection"] == ["DetectMessageEnd"]
        assert placed["AsyncAmdStatusCallback"] == [f"{PUBLIC}/webhooks/twilio/amd"]
        form = {"CallSid": "CA" + "1" * 32, "AnsweredBy": answered_by}
        signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/webhooks/twilio/amd", form)
        answer = await client.post(
            "/webhooks/twilio/amd", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert answer.status_code == 204
        after = (await client.get(f"/calls/{call['id']}")).json()
        assert after["status"] == status
        updates = [f for path, f in twilio.requests[1:] if path.endswith("1" * 32 + ".json")]
        if action is None:
            assert updates == []
        else:
            (update,) = updates
            assert action in update["Twiml"][0]
            assert update["Twiml"][0].endswith("<Hangup/></Response>")
