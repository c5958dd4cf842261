"""Replies that are not a plain yes: a conditional or partial yes never assigns the shift and
goes to the coordinator; an unclear reply after the shift closed offers nothing."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.messaging import Message, classify_intent
from caretime.runtime import Runtime
from caretime.shifts.replies import is_conditional
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone

COORDINATOR = "+16175550123"

# Each reads as "yes" to the keyword classifier, and each would give a shift on terms the
# caregiver did not accept: none may assign it.
CONDITIONAL = [
    "Yes but only until 3pm",
    "yes if I can leave at 2",
    "Yes, if I can leave at 2",
    "yes but I need to leave by 8",
    "Sure, but I can only stay until 6",
    "I can do it until 4",
    "yes from 4pm",
    "I can take it from 3 to 10",
    "Yes, I can come at 3",
    "yes, I'll be there at 3:30",
    "Yes but I'll be 30 minutes late",
    "yes but I'll be late",
    "ok if I can start at 4",
    "yes as long as I'm done by 9",
    "yes provided I get a ride",
    "yes unless my kid is sick",
    "I can do half of it",
    "yes for part of the shift",
    "yes but just the first half",
    "I can do a few hours",
    "yes, can I bring my daughter?",
    "Yes? What's the rate",
    "yes if there's a bonus",
    "yes but I have to pick up my kids at 5",
    "Yes, after school drop off",
    "sure, I can get there by 3",
    "yes, depending on traffic",
    "yes I could leave early though",
    "Yes! Only 4 hrs tho",
    "sure if it's paid overtime",
    "I'll take it but need to leave early",
    "yes, I can cover between 2 and 6",
    "absolutely but only till 7",
]
PLAIN = ["yes", "Yes!", "YES I can take it", "yes please", "Sure", "yep 👍", "I'll take it"]


@pytest.mark.parametrize("text", CONDITIONAL)
def test_each_conditional_phrasing_is_a_yes_with_a_condition(text: str) -> None:
    assert classify_intent(text) == "accept"
    assert is_conditional(text)


@pytest.mark.parametrize("text", PLAIN)
def test_a_plain_yes_is_not_conditional(text: str) -> None:
    assert classify_intent(text) == "accept"
    assert not is_conditional(text)


@pytest.fixture
async def offered(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> str:
    tenant = await default_tenant_id(runtime)
    for n in (1, 2):
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    alerts = {"shifts": {"alerts": [{"phone": COORDINATOR, "events": ["question", "dropped"]}]}}
    assert (await client.patch("/tenants/me/policy", json=alerts)).status_code == 200
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    return tenant


async def _reply(client: httpx.AsyncClient, n: int, body: str) -> dict[str, str]:
    response = await client.post("/messages/inbound", json={"from": phone(n), "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, str] = response.json()
    return result


async def _answer_to(runtime: Runtime, message_id: str) -> str:
    async with runtime.sessions() as session:
        body = await session.scalar(select(Message.body).where(Message.related_id == message_id))
    assert body is not None
    return body


async def _texts_to(runtime: Runtime, to: str) -> list[str]:
    async with runtime.sessions() as session:
        return list(
            (await session.scalars(select(Message.body).where(Message.to_phone == to))).all()
        )


async def test_no_conditional_phrasing_ever_assigns_the_shift(
    runtime: Runtime, client: httpx.AsyncClient, offered: str
) -> None:
    for text in CONDITIONAL:
        result = await _reply(client, 1, text)
        assert (result["intent"], result["action"]) == ("accept", "clarify"), text
    shift = (await client.get("/shifts/s1")).json()
    assert (shift["status"], shift["assigned_caregiver_id"]) == ("open", None)
    alerts = await _texts_to(runtime, COORDINATOR)
    assert len(alerts) == len(CONDITIONAL)
    # A plain yes afterwards takes it.
    assert (await _reply(client, 1, "yes"))["action"] == "assigned"


async def test_the_coordinator_sees_the_words_in_an_alert_and_the_timeline(
    runtime: Runtime, client: httpx.AsyncClient, offered: str
) -> None:
    result = await _reply(client, 2, "Yes but only until 3pm")
    answer = await _answer_to(runtime, result["message_id"])
    assert answer.startswith("Thanks, we have passed your message to your coordinator")
    assert "reply YES" in answer
    [alert] = await _texts_to(runtime, COORDINATOR)
    assert alert == (
        "Question on the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard (shift s1) from "
        'Caregiver 2 (c2): "Yes but only until 3pm"'
    )
    entries = (await client.get("/shifts/s1/timeline")).json()["entries"]
    [reply] = [e for e in entries if e["kind"] == "reply"]
    assert (reply["details"]["text"], reply["details"]["action"]) == (
        "Yes but only until 3pm",
        "clarify",
    )
    [shown] = [e for e in entries if e["kind"] == "alert"]
    assert (shown["details"]["alert"], shown["details"]["text"]) == ("question", alert)


async def test_after_the_shift_is_filled_an_unclear_reply_offers_nothing(
    runtime: Runtime, client: httpx.AsyncClient, offered: str
) -> None:
    assert (await _reply(client, 1, "yes"))["action"] == "assigned"
    for text in ("maybe?", "what time again", "Yes if it's still open at 3"):
        answer = await _answer_to(runtime, (await _reply(client, 2, text))["message_id"])
        assert "has been filled" in answer, answer
        assert "YES" not in answer
    mine = await _answer_to(runtime, (await _reply(client, 1, "hmm"))["message_id"])
    assert mine.startswith("You have the RN shift")


async def test_after_the_shift_is_cancelled_an_unclear_reply_says_so(
    runtime: Runtime, client: httpx.AsyncClient, offered: str
) -> None:
    assert (await client.post("/shifts/s1/cancel")).status_code == 200
    answer = await _answer_to(runtime, (await _reply(client, 2, "not sure"))["message_id"])
    assert answer == "The RN shift Mon Mar 2, 2:00 PM–10:00 PM EST was cancelled."
