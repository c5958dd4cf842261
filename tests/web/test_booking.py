"""Booking pages through the ASGI app: providers, a week of availability, slots, holds."""

from __future__ import annotations

from datetime import timedelta

import httpx

from caretime.clock import FrozenClock
from tests.web.support import sign_in

# The test clock is Mon 2 Mar 2026 15:00 UTC; bookings need 24 h notice.
WEDNESDAY = "2026-03-04"
NINE_AM_NEW_YORK = "2026-03-04T14:00:00Z"


async def _post(client: httpx.AsyncClient, path: str, token: str, **form: str) -> httpx.Response:
    return await client.post(path, data={**form, "csrf_token": token})


async def _provider_with_morning(client: httpx.AsyncClient) -> str:
    token = await sign_in(client)
    response = await _post(
        client, "/ui/booking", token, provider_id="P1", name="Dr Who", tz="America/New_York"
    )
    assert response.headers["location"] == "/ui/booking/P1"
    response = await _post(
        client, "/ui/booking/P1/windows", token, date=WEDNESDAY, start="09:00", end="12:00"
    )
    assert response.status_code == 303, response.text
    return token


async def _hold(client: httpx.AsyncClient, token: str, client_id: str, slot: str) -> str:
    response = await _post(
        client, "/ui/booking/P1/reserve", token, slot_start=slot, client_id=client_id
    )
    assert response.status_code == 303, response.text
    page = (await client.get(response.headers["location"])).text
    return page.split('id="reservation-', 1)[1].split('"', 1)[0]


async def test_published_time_shows_as_windows_and_free_slots(
    anon_client: httpx.AsyncClient,
) -> None:
    await _provider_with_morning(anon_client)
    page = (await anon_client.get("/ui/booking/P1")).text
    assert "Week of Mon 02 Mar 2026" in page
    assert "09:00–12:00" in page
    assert "12 free slots this week" in page
    assert f'<option value="{NINE_AM_NEW_YORK}">' in page
    assert 'href="/ui/booking/P1"' in (await anon_client.get("/ui/booking")).text


async def test_hold_then_confirm(anon_client: httpx.AsyncClient) -> None:
    token = await _provider_with_morning(anon_client)
    reservation = await _hold(anon_client, token, "pat-1", NINE_AM_NEW_YORK)
    page = (await anon_client.get(f"/ui/booking/P1?week={WEDNESDAY}")).text
    assert 'data-countdown-to="2026-03-02T15:30:00Z"' in page
    assert "11 free slots this week" in page
    response = await _post(anon_client, f"/ui/reservations/{reservation}/confirm", token)
    assert response.status_code == 303
    fragment = (await anon_client.get(f"/ui/booking/P1/reservations?week={WEDNESDAY}")).text
    assert ">confirmed<" in fragment
    assert "data-countdown-to" not in fragment


async def test_deny_and_the_same_slot_twice(anon_client: httpx.AsyncClient) -> None:
    token = await _provider_with_morning(anon_client)
    reservation = await _hold(anon_client, token, "pat-1", NINE_AM_NEW_YORK)
    taken = await _post(
        anon_client, "/ui/booking/P1/reserve", token, slot_start=NINE_AM_NEW_YORK, client_id="x"
    )
    assert taken.status_code == 409
    await _post(anon_client, f"/ui/reservations/{reservation}/deny", token)
    fragment = (await anon_client.get(f"/ui/booking/P1/reservations?week={WEDNESDAY}")).text
    assert ">denied<" in fragment


async def test_an_unconfirmed_hold_expires(
    anon_client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    token = await _provider_with_morning(anon_client)
    await _hold(anon_client, token, "pat-1", NINE_AM_NEW_YORK)
    clock.advance(timedelta(minutes=31))
    fragment = (await anon_client.get(f"/ui/booking/P1/reservations?week={WEDNESDAY}")).text
    assert ">expired<" in fragment
    assert "Confirm" not in fragment


async def test_removing_time_under_a_confirmed_appointment_is_refused(
    anon_client: httpx.AsyncClient,
) -> None:
    token = await _provider_with_morning(anon_client)
    reservation = await _hold(anon_client, token, "pat-1", NINE_AM_NEW_YORK)
    await _post(anon_client, f"/ui/reservations/{reservation}/confirm", token)
    response = await anon_client.post(
        "/ui/booking/P1/windows",
        data={"date": WEDNESDAY, "start": "09:00", "end": "12:00", "action": "remove"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert response.status_code == 409
    assert response.headers["hx-retarget"] == "#alerts"


async def test_weekly_hours(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    await _post(anon_client, "/ui/booking", token, provider_id="P2", name="Dr No", tz="UTC")
    response = await anon_client.post(
        "/ui/booking/P2/templates",
        data={
            "csrf_token": token,
            "weekdays": ["mon", "wed"],
            "start": "08:00",
            "end": "10:00",
            "valid_from": "2026-03-02",
        },
    )
    assert response.status_code == 303, response.text
    page = (await anon_client.get("/ui/booking/P2?week=2026-03-09")).text
    assert page.count("08:00–10:00") == 3  # Monday, Wednesday, and the template itself
    assert "Mon, Wed 08:00–10:00, from 2026-03-02" in page
