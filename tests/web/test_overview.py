"""The overview: today's counts in the viewer's day and the next 48 hours of calls by zone."""

from __future__ import annotations

import httpx

from caretime.dispatch.worker import Dispatcher
from tests.support import TEST_API_KEY
from tests.web.support import sign_in


async def _post(client: httpx.AsyncClient, path: str, token: str, **form: str) -> httpx.Response:
    response = await client.post(path, data={**form, "csrf_token": token})
    assert response.status_code == 303, response.text
    return response


async def test_today_counts_and_the_48_hour_chart(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    # Mon 2 Mar 15:00 UTC: New York may be called now, Los Angeles (07:00) later today.
    await _post(anon_client, "/ui/calls", token, name="Ann", phone="212-555-0100")
    await _post(anon_client, "/ui/calls", token, name="Cal", phone="213-555-0100")
    tomorrow = {"when": "at", "at": "2026-03-03T09:30", "tz": "America/New_York"}
    await _post(anon_client, "/ui/calls", token, name="Bob", phone="212-555-0101", **tomorrow)
    await _post(
        anon_client, "/ui/shifts", token, shift_id="S1", role_required="RN",
        start="2026-03-02T20:00", end="2026-03-02T23:00", tz="UTC",
    )  # fmt: skip

    page = (await anon_client.get("/")).text
    assert '<dd data-stat="calls-scheduled">2</dd>' in page
    assert '<dd data-stat="shifts-open">1</dd>' in page
    assert '<dd data-stat="appointments-held">0</dd>' in page
    assert "3 calls, peak 1 an hour" in page
    assert "America/New_York" in page
    assert "America/Los_Angeles" in page

    await anon_client.post("/ui/preferences", data={"tz": "Asia/Tokyo", "csrf_token": token})
    # Tokyo's day (Mar 3, 00:00–24:00 JST = Mar 2 15:00 – Mar 3 15:00 UTC) holds all three.
    today = (await anon_client.get("/ui/overview/today")).text
    assert '<dd data-stat="calls-scheduled">3</dd>' in today


async def test_today_counts_what_happened_today_whatever_day_it_is_for(
    anon_client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    """A hold made today for next week's visit, and next week's shift filled today, are
    today's work (it is Mon 2 Mar)."""
    api = {"Authorization": f"Bearer {TEST_API_KEY}"}
    await _api(anon_client, "/providers", {"id": "p1", "name": "Dr A", "tz": "UTC"}, api)
    window = {"date": "2026-03-09", "start": "09:00", "end": "12:00"}
    await _api(anon_client, "/providers/p1/availability", window, api)
    hold = {"provider_id": "p1", "slot_start": "2026-03-09T09:00:00Z", "client_id": "c1"}
    await _api(anon_client, "/reservations", hold, api)
    alice = {
        "id": "alice",
        "name": "Alice",
        "phone": "+16172000001",
        "roles": ["RN"],
    }  # awake: Boston
    await _api(anon_client, "/caregivers", alice, api)
    shift = {"id": "S9", "role_required": "RN", "start_time": "2026-03-10T14:00:00Z",
             "end_time": "2026-03-10T22:00:00Z"}  # fmt: skip
    await _api(anon_client, "/shifts", shift, api)
    await _api(anon_client, "/shifts/S9/fanout", None, api)
    await dispatcher.run_pending()
    reply = {"from": "+16172000001", "body": "yes", "shift_id": "S9"}
    assert (await _api(anon_client, "/messages/inbound", reply, api))["action"] == "assigned"

    await sign_in(anon_client)
    today = (await anon_client.get("/ui/overview/today")).text
    assert '<dd data-stat="appointments-held">1</dd>' in today
    assert '<dd data-stat="appointments-on-hold">1</dd>' in today
    assert '<dd data-stat="shifts-filled">1</dd>' in today
    assert '<dd data-stat="shifts-open">0</dd>' in today


async def _api(
    client: httpx.AsyncClient, path: str, body: object, headers: dict[str, str]
) -> dict[str, object]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code < 300, response.text
    return dict(response.json()) if response.content else {}
