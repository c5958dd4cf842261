"""Answering a voice offer on the keypad, through the simulator, on a frozen clock: 1 takes the
shift, 2 passes, any other key hears the prompt again; a key answers the shift the call was
about; the claim is the same one-winner claim as a text's."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from caretime.clock import FrozenClock
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts.models import Offer
from tests.shifts.support import (
    default_tenant_id,
    make_caregiver,
    make_caregivers,
    make_shift,
    offer_messages,
    phone,
)

RN = [1, 2, 3]
# The voice round comes at 10 minutes; a simulated call is answered 6 seconds after it rings.
TO_THE_CALLS = timedelta(minutes=10)
ANSWERED = timedelta(seconds=6)
CONFIRMED = (
    "Confirmed: the RN shift Mon Mar 2, 2:00 PM–10:00 PM EST at Ballard is yours. Thank you!"
)


@pytest.fixture
async def called(
    app: FastAPI,
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
) -> dict[int, str]:
    """Three RNs texted about s1, nobody answered, each called and the call answered:
    caregiver n → the id of the call to them."""
    tenant = await default_tenant_id(runtime)
    for n in RN:
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    assert (await client.post("/shifts/s1/fanout")).status_code == 202
    return await _calls_answered(runtime, clock, dispatcher, shift_id="s1")


async def _calls_answered(
    runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher, *, shift_id: str
) -> dict[int, str]:
    await dispatcher.run_pending()
    clock.advance(TO_THE_CALLS)
    await dispatcher.run_pending()
    clock.advance(ANSWERED)
    await dispatcher.run_pending()
    calls = [c for c in await offer_messages(runtime, channel="voice") if c.status == "in_progress"]
    by_phone = {call.to_phone: call.id for call in calls if await _about(runtime, call, shift_id)}
    return {n: by_phone[phone(n)] for n in RN if phone(n) in by_phone}


async def _about(runtime: Runtime, call: Message, shift_id: str) -> bool:
    statement = select(Offer.shift_id).where(Offer.id == call.related_id)
    async with runtime.sessions() as session:
        return await session.scalar(statement) == shift_id


async def _press(client: httpx.AsyncClient, call_id: str, digits: str) -> dict[str, Any]:
    response = await client.post(f"/simulator/calls/{call_id}/digits", json={"digits": digits})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _shift(client: httpx.AsyncClient, shift_id: str = "s1") -> tuple[str, str | None]:
    shift = (await client.get(f"/shifts/{shift_id}")).json()
    return shift["status"], shift["assigned_caregiver_id"]


async def _texts_to(runtime: Runtime, n: int) -> list[str]:
    statement = select(Message.body).where(
        Message.to_phone == phone(n), Message.direction == "outbound", Message.channel == "sms"
    )
    async with runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(Message.created_at))).all())


async def test_pressing_1_takes_the_shift_and_says_so(
    runtime: Runtime, client: httpx.AsyncClient, called: dict[int, str]
) -> None:
    result = await _press(client, called[2], "1")
    assert result == {
        **result,
        "call_id": called[2],
        "intent": "accept",
        "action": "assigned",
        "said": CONFIRMED,
        "shift_id": "s1",
    }
    assert await _shift(client) == ("filled", "c2")
    # What she heard, also in writing.
    assert (await _texts_to(runtime, 2))[-1] == CONFIRMED


async def test_the_timeline_shows_the_key_like_a_text(
    client: httpx.AsyncClient, called: dict[int, str]
) -> None:
    await _press(client, called[1], "1")
    entries = (await client.get("/shifts/s1/timeline")).json()["entries"]
    [reply] = [e for e in entries if e["kind"] == "reply"]
    assert (reply["caregiver_id"], reply["channel"], reply["round"]) == ("c1", "voice", 2)
    details = reply["details"]
    assert (details["text"], details["intent"], details["action"]) == (
        "pressed 1",
        "accept",
        "assigned",
    )
    assert [e["kind"] for e in entries].index("reply") < [e["kind"] for e in entries].index(
        "assigned"
    )


async def test_pressing_2_passes_and_the_shift_stays_open(
    client: httpx.AsyncClient, called: dict[int, str]
) -> None:
    result = await _press(client, called[3], "2")
    assert (result["intent"], result["action"]) == ("decline", "declined")
    assert result["said"] == (
        "Thanks for letting us know; we won't offer you the shift "
        "Mon Mar 2, 2:00 PM–10:00 PM EST again."
    )
    assert await _shift(client) == ("open", None)
    candidates = (await client.get("/shifts/s1/candidates")).json()["items"]
    assert "declined" in {c["caregiver_id"]: c["reasons"] for c in candidates}["c3"]


async def test_any_other_key_repeats_the_prompt_and_changes_nothing(
    client: httpx.AsyncClient, called: dict[int, str]
) -> None:
    for key in ("0", "3", "9", "*", "#"):
        result = await _press(client, called[1], key)
        assert (result["intent"], result["action"], result["message_id"]) == (None, "repeat", None)
        assert result["said"].startswith("Sorry, that is not one of the choices. Hello, this is")
        assert result["said"].endswith("Press 1 to take the shift, or 2 to pass.")
    assert await _shift(client) == ("open", None)
    # She can still choose.
    assert (await _press(client, called[1], "1"))["action"] == "assigned"


async def test_a_key_after_someone_else_took_it_hears_it_is_filled(
    client: httpx.AsyncClient, called: dict[int, str]
) -> None:
    assert (await _press(client, called[1], "1"))["action"] == "assigned"
    late = await _press(client, called[2], "1")
    assert (late["action"], late["said"]) == (
        "already_filled",
        "Thank you! The RN shift Mon Mar 2, 2:00 PM–10:00 PM EST has already been filled.",
    )
    texted = await client.post("/messages/inbound", json={"from": phone(3), "body": "yes"})
    assert texted.json()["action"] == "already_filled"
    assert await _shift(client) == ("filled", "c1")


async def test_a_call_takes_one_answer(
    runtime: Runtime, client: httpx.AsyncClient, called: dict[int, str]
) -> None:
    first = await _press(client, called[1], "1")
    again = await _press(client, called[1], "2")
    assert (again["action"], again["said"], again["message_id"]) == (
        "assigned",
        CONFIRMED,
        first["message_id"],
    )
    assert await _shift(client) == ("filled", "c1")
    assert (await _texts_to(runtime, 1)).count(CONFIRMED) == 1


async def test_the_key_answers_the_shift_the_call_was_about(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    called: dict[int, str],
) -> None:
    """c1 was called about s1, then texted about s2: her key still answers s1 (a text "yes"
    would answer the latest offer, s2)."""
    tenant = await default_tenant_id(runtime)
    await make_shift(runtime, tenant_id=tenant, id="s2", starts_in=timedelta(days=2))
    assert (await client.post("/shifts/s2/fanout")).status_code == 202
    await dispatcher.run_pending()
    result = await _press(client, called[1], "1")
    assert (result["action"], result["shift_id"]) == ("assigned", "s1")
    assert await _shift(client, "s1") == ("filled", "c1")
    assert await _shift(client, "s2") == ("open", None)


async def test_keys_are_heard_only_on_an_answered_call_that_asks_for_one(
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
) -> None:
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="c1", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant, id="s1")
    await client.post("/shifts/s1/fanout")
    await dispatcher.run_pending()
    clock.advance(TO_THE_CALLS)
    await dispatcher.run_pending()
    [ringing] = await offer_messages(runtime, channel="voice")
    early = await client.post(f"/simulator/calls/{ringing.id}/digits", json={"digits": "1"})
    assert early.status_code == 409
    assert early.json()["type"].endswith("call-not-listening")
    assert "keys can be pressed once it is answered" in early.json()["detail"]
    [text] = await offer_messages(runtime, channel="sms")
    not_a_call = await client.post(f"/simulator/calls/{text.id}/digits", json={"digits": "1"})
    assert not_a_call.status_code == 404
    assert await _shift(client) == ("open", None)


@pytest.mark.parametrize("digits", ["12", "a"])
async def test_a_press_is_one_key(
    client: httpx.AsyncClient, called: dict[int, str], digits: str
) -> None:
    response = await client.post(f"/simulator/calls/{called[1]}/digits", json={"digits": digits})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "digits"]


PRESSERS = 20
TEXTERS = 20
RACES = 3


@pytest.mark.postgres_only
async def test_keys_and_texts_racing_for_one_shift_give_it_to_exactly_one(
    app: FastAPI,
    runtime: Runtime,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
) -> None:
    """20 caregivers press 1 on their calls while 20 others text "yes", all at once, for
    each of three shifts: one of the forty gets each shift, everyone else hears it is filled."""
    tenant = await default_tenant_id(runtime)
    everyone = await make_caregivers(
        runtime, tenant_id=tenant, count=PRESSERS + TEXTERS, roles=["RN"]
    )
    for race in range(RACES):
        shift_id = await make_shift(
            runtime, tenant_id=tenant, id=f"race{race}", starts_in=timedelta(days=race + 1)
        )
        assert (await client.post(f"/shifts/{shift_id}/fanout")).status_code == 202
        await dispatcher.run_pending()
        clock.advance(TO_THE_CALLS)
        await dispatcher.run_pending()
        clock.advance(ANSWERED)
        await dispatcher.run_pending()
        results = await _keys_and_texts_at_once(runtime, client, shift_id, len(everyone))
        actions = Counter(r["action"] for r in results)
        assert actions == {"assigned": 1, "already_filled": len(everyone) - 1}
        [winner] = [n for n, r in enumerate(results) if r["action"] == "assigned"]
        assert await _shift(client, shift_id) == ("filled", everyone[winner])


async def _keys_and_texts_at_once(
    runtime: Runtime, client: httpx.AsyncClient, shift_id: str, count: int
) -> list[dict[str, Any]]:
    """Caregivers 0..count-1 answer at once: odd ones press 1 on their call about the
    shift, even ones text "yes" about it."""
    calls = {
        c.to_phone: c.id
        for c in await offer_messages(runtime, channel="voice")
        if await _about(runtime, c, shift_id)
    }
    assert len(calls) == count
    # The API key's use is recorded (a write to its row) at most once a minute: do it now,
    # or the racers would queue behind that row lock rather than race each other.
    assert (await client.get(f"/shifts/{shift_id}")).status_code == 200

    async def text(n: int) -> dict[str, Any]:
        reply = {"from": phone(n), "body": "yes", "shift_id": shift_id}
        response = await client.post("/messages/inbound", json=reply)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    racers = [_press(client, calls[phone(n)], "1") if n % 2 else text(n) for n in range(count)]
    return list(await asyncio.gather(*racers))
