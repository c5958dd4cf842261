"""Shift pages through the ASGI app: caregivers, a shift, its fan-out, replies from the
simulated phones, and the timeline that shows who got it."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from tests.support import make_tenant
from tests.web.support import sign_in

ALICE, BOB = "+16172000001", "+16172000002"  # Boston: awake at the frozen 10:00 EST


async def _post(client: httpx.AsyncClient, path: str, token: str, **form: str) -> httpx.Response:
    return await client.post(path, data={**form, "csrf_token": token})


async def _add_caregivers(client: httpx.AsyncClient, token: str) -> None:
    for caregiver_id, phone in (("alice", ALICE), ("bob", BOB)):
        response = await _post(
            client,
            "/ui/caregivers",
            token,
            caregiver_id=caregiver_id,
            name=caregiver_id.title(),
            phone=phone,
            roles="rn, lpn",
        )
        assert response.status_code == 303, response.text


async def _create_shift(client: httpx.AsyncClient, token: str, **form: str) -> httpx.Response:
    fields = {
        "shift_id": "S1",
        "role_required": "RN",
        "start": "2026-03-03T09:00",
        "end": "2026-03-03T17:00",
        "tz": "America/New_York",
    }
    return await _post(client, "/ui/shifts", token, **{**fields, **form})


async def test_create_shift_in_its_local_time(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    response = await _create_shift(anon_client, token)
    assert response.headers["location"] == "/ui/shifts/S1"
    page = (await anon_client.get("/ui/shifts/S1")).text
    assert 'datetime="2026-03-03T14:00:00Z"' in page  # 09:00 in New York
    assert "Start fan-out" in page
    listing = (await anon_client.get("/ui/shifts?status=open")).text
    assert 'href="/ui/shifts/S1"' in listing


async def test_invalid_shift_is_explained(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    response = await _create_shift(anon_client, token, end="2026-03-03T08:00")
    assert response.status_code == 422
    assert "end_time must be after start_time" in response.text
    response = await _create_shift(anon_client, token, tz="Mars/Olympus")
    assert response.status_code == 422


async def test_fan_out_and_replies_from_the_phone_simulator(
    anon_client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    token = await sign_in(anon_client)
    await _add_caregivers(anon_client, token)
    assert "alice" in (await anon_client.get("/ui/caregivers")).text
    await _create_shift(anon_client, token)
    before = (await anon_client.get("/ui/shifts/S1")).text
    assert "2 of 2 will be reached (sms then voice)." in before
    response = await _post(anon_client, "/ui/shifts/S1/fanout", token)
    assert response.status_code == 303
    await dispatcher.run_pending()

    phones = (await anon_client.get("/ui/phone")).text
    assert ALICE in phones
    assert BOB in phones
    inbox = (await anon_client.get(f"/ui/phone/{quote(ALICE)}")).text
    assert "Text received" in inbox

    first = await _post(anon_client, f"/ui/phone/{quote(ALICE)}/reply", token, body="yes")
    assert first.headers["location"].endswith("intent=accept&action=assigned")
    second = await _post(anon_client, f"/ui/phone/{quote(BOB)}/reply", token, body="Yes!")
    assert second.headers["location"].endswith("intent=accept&action=already_filled")

    live = (await anon_client.get("/ui/shifts/S1/live")).text
    # Caregivers by name, their id on hover, on the shift and in its timeline.
    assert 'Assigned to <strong><span class="named" title="alice">Alice</span></strong>' in live
    assert 'Offered to <strong><span class="named" title="bob">Bob</span></strong>' in live
    listing = (await anon_client.get("/ui/shifts")).text
    assert '<span class="named" title="alice">Alice</span>' in listing
    assert live.count("already filled") == 1
    assert "Start fan-out" not in live
    assert "<q>Yes!</q>" in live  # the reply's words, for the coordinator
    thread = (await anon_client.get(f"/ui/phone/{quote(BOB)}/thread")).text
    assert "You replied" in thread


async def test_simulator_numbers_are_tenant_scoped(
    anon_client: httpx.AsyncClient, dispatcher: Dispatcher, runtime: Runtime
) -> None:
    token = await sign_in(anon_client)
    await _add_caregivers(anon_client, token)
    await _create_shift(anon_client, token)
    await _post(anon_client, "/ui/shifts/S1/fanout", token)
    await dispatcher.run_pending()
    _, other_key = await make_tenant(runtime, name="other agency")
    anon_client.cookies.clear()
    await sign_in(anon_client, key=other_key)
    assert ALICE not in (await anon_client.get("/ui/phone")).text
    assert "Nothing received yet" in (await anon_client.get(f"/ui/phone/{quote(ALICE)}")).text
    assert (await anon_client.get("/ui/shifts/S1")).status_code == 404
