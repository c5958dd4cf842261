"""Call content: purpose, script and variables on /schedule items, POST /calls, batches and
CSV; limits and unknown fields as item errors; the script reaches the provider with its
variables filled in (simulator, Twilio fake); tenant default scripts per purpose."""

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.providers import SERVICE_KEY, Providers
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.outreach.support import set_calling_policy
from tests.support import TEST_API_KEY

ANN = {"name": "Ann Lee", "phone": "212-555-0100"}
CONTENT = {
    "purpose": "flu-shot",
    "script": "Hello {{first_name}}, your {{due}} is due. Call {{ callback }}.",
    "variables": {"first_name": "Ann", "due": "flu shot", "callback": 18005550100},
}


async def spoken_to(client: httpx.AsyncClient, phone: str) -> list[str]:
    received = await client.get("/simulator/messages", params={"to": phone, "channel": "voice"})
    return [message["body"] for message in received.json()["items"]]


async def test_content_is_kept_and_spoken_with_variables(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    (item,) = (await client.post("/schedule", json=[{**ANN, **CONTENT}])).json()
    call = (await client.get(f"/calls/{item['scheduled_task_id']}")).json()
    assert (call["purpose"], call["script"], call["variables"]) == (
        "flu-shot", CONTENT["script"], CONTENT["variables"])  # fmt: skip
    clock.advance(timedelta(hours=2))
    await dispatcher.run_pending()
    assert await spoken_to(client, ANN["phone"]) == [
        "Hello Ann, your flu shot is due. Call 18005550100."
    ]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"email": "a@b.c"}, 'unknown field(s) "email": an item has allow_duplicate, name'),
        ({"script": "x" * 2001}, '"script" is longer than 2000 characters'),
        ({"script": "  "}, '"script" must be non-empty text'),
        ({"purpose": "flu/shot"}, '"purpose" must be a short name'),
        ({"variables": {"1st": "x"}}, "variable name '1st' must be letters, digits and _"),
        ({"variables": {"due": {"nested": 1}}}, 'variable "due" must be a string or a number'),
        ({"variables": {"ok": True}}, 'variable "ok" must be a string or a number'),
        ({"variables": {f"v{i}": i for i in range(51)}}, '"variables" has more than 50'),
        ({"variables": ["a"]}, '"variables" must be an object'),
        ({"allow_duplicate": "maybe"}, '"allow_duplicate" must be true or false'),
        ({"script": "Hi {{first_name}}"}, "the script uses {{first_name}} but the item has no"),
    ],
)
async def test_bad_content_is_an_error_on_that_item_only(
    client: httpx.AsyncClient, extra: dict[str, Any], error: str
) -> None:
    results = (
        await client.post("/schedule", json=[{**ANN, **extra}, ANN | {"phone": "212-555-0101"}])
    ).json()
    assert results[0]["status"] == "rejected"
    assert results[0]["error"].startswith(error), results[0]["error"]
    assert results[1]["status"] == "scheduled"


async def test_post_calls_takes_content_and_refuses_unknown_fields(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/calls", json={**ANN, **CONTENT})
    assert created.status_code == 201
    assert created.json()["variables"] == CONTENT["variables"]
    unknown = await client.post("/calls", json={**ANN, "phone": "212-555-0101", "email": "x"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"][-1] == "email"
    missing = await client.post(
        "/calls", json={**ANN, "phone": "212-555-0102", "script": "Hi {{first_name}}"}
    )
    assert missing.status_code == 422
    assert "{{first_name}}" in missing.json()["detail"]


async def test_csv_extra_columns_become_variables(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    csv = (
        "name,phone,purpose,script,first_name,due\n"
        "Ann Lee,212-555-0100,flu-shot,Hi {{first_name}}: {{due}},Ann,flu shot\n"
        "Bob Roe,212-555-0101,flu-shot,Hi {{first_name}}: {{due}},Bob,\n"
    )
    batch = await client.post(
        "/outreach/batches", content=csv, headers={"content-type": "text/csv"}
    )
    assert (batch.json()["scheduled"], batch.json()["rejected"]) == (1, 1)
    assert "uses {{due}} but the item has no such variable" in (
        batch.json()["rejected_items"][0]["error"])  # fmt: skip
    clock.advance(timedelta(hours=2))
    await dispatcher.run_pending()
    assert await spoken_to(client, "212-555-0100") == ["Hi Ann: flu shot"]


async def test_a_csv_column_that_cannot_be_a_variable_is_refused_as_a_whole(
    client: httpx.AsyncClient,
) -> None:
    csv = "name,phone,First Name\nAnn,212-555-0100,Ann\n"
    response = await client.post(
        "/outreach/batches", content=csv, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert "'First Name' cannot be variable names" in response.json()["detail"]


async def test_the_tenant_default_script_per_purpose(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    scripts = {"flu-shot": "{{name}}, it is flu season.", "": "This is your clinic."}
    await set_calling_policy(client, scripts=scripts)
    await client.post("/schedule", json=[
        {**ANN, "purpose": "flu-shot"},
        {"name": "Bob", "phone": "212-555-0101"},
        {"name": "Cy", "phone": "212-555-0102", "purpose": "other"},
    ])  # fmt: skip
    clock.advance(timedelta(hours=2))
    await dispatcher.run_pending()
    assert await spoken_to(client, ANN["phone"]) == ["Ann Lee, it is flu season."]
    assert await spoken_to(client, "212-555-0101") == ["This is your clinic."]
    assert await spoken_to(client, "212-555-0102") == ["Hello, this is a call from your care team."]


class FakeTwilio:
    def __init__(self) -> None:
        self.forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(parse_qs(request.content.decode()))
        return httpx.Response(201, json={"sid": f"CA{len(self.forms):032d}", "status": "queued"})


class TestTwilio:
    @pytest.fixture
    def settings(self, database: Database) -> Settings:
        return Settings(
            env="test", database_url=database.url, api_key=TEST_API_KEY, workers=0,
            voice_provider="twilio", twilio_account_sid="AC1", twilio_auth_token="t",
            twilio_from="+15005550006", twilio_base_url="https://twilio.fake",
        )  # fmt: skip

    async def test_twilio_says_the_script_with_variables(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FrozenClock,
        dispatcher: Dispatcher,
    ) -> None:
        twilio = FakeTwilio()
        runtime.services[SERVICE_KEY] = Providers(runtime.settings, httpx.MockTransport(twilio))
        variables = {"first_name": "Ann & <Co>"}
        await client.post(
            "/calls", json={**ANN, "script": "Hi {{first_name}}", "variables": variables}
        )
        clock.advance(timedelta(hours=2))
        await dispatcher.run_pending()
        (form,) = twilio.forms
        assert "<Say>Hi Ann &amp; &lt;Co&gt;</Say>" in form["Twiml"][0]
