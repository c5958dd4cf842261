"""Reservations over the API: holds, notice, grid, confirmation, expiry, idempotency,
denial and cancellation — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from caretime.booking import lifecycle
from caretime.booking.availability import Window
from caretime.booking.errors import InvalidTransition
from caretime.booking.grid import VisitShape, is_visit_start
from caretime.booking.models import Appointment
from caretime.booking.rendering import render, render_json
from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.runtime import Runtime
from caretime.tenancy.models import ApiKey
from tests.booking.support import (
    make_availability,
    make_provider,
    make_reservation,
    slot_starts,
    visit_starts,
)
from tests.conftest import LiveServer
from tests.support import TEST_API_KEY, bearer, make_tenant

# The clock starts at 2026-03-02T15:00Z; 3 March 08:00–15:00 New York (EST) is 13:00–20:00Z.
SLOT = "2026-03-03T16:00:00Z"
DAY = {"start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z"}


@pytest.fixture
async def booked_day(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    )


@pytest.mark.usefixtures("booked_day")
async def test_a_reservation_is_a_hold_with_a_deadline(client: httpx.AsyncClient) -> None:
    hold = await make_reservation(client, slot_start="2026-03-03T16:00:00+00:00")
    assert hold["id"].startswith("apt_")
    assert {k: hold[k] for k in ("status", "expires_at", "provider_id", "client_id")} == {
        "status": "held",
        "expires_at": "2026-03-02T15:30:00Z",
        "provider_id": "dr-jekyll",
        "client_id": "patient-1",
    }
    assert (hold["slot_start"], hold["slot_end"]) == (SLOT, "2026-03-03T16:15:00Z")
    assert hold["fhir"] == {"appointment": "pending", "slot": "busy-tentative"}
    assert (await client.get(f"/reservations/{hold['id']}")).json() == hold
    assert SLOT not in await slot_starts(client, **DAY)


@pytest.mark.usefixtures("booked_day")
async def test_exactly_the_minimum_notice_is_allowed(client: httpx.AsyncClient) -> None:
    starts = await slot_starts(client, **DAY)
    assert starts[0] == "2026-03-03T15:00:00Z"  # exactly 24 h after now
    assert len(starts) == 20  # 15:00–20:00Z; 13:00–15:00Z is inside the notice
    too_soon = await make_reservation(client, slot_start="2026-03-03T14:45:00Z", expect=422)
    assert too_soon["type"] == "urn:caretime:problem:too-little-notice"
    await make_reservation(client, slot_start="2026-03-03T15:00:00Z")


@pytest.mark.usefixtures("booked_day")
async def test_off_grid_and_outside_availability_are_422(client: httpx.AsyncClient) -> None:
    off = await make_reservation(client, slot_start="2026-03-03T16:07:00Z", expect=422)
    assert off["type"] == "urn:caretime:problem:off-grid"
    outside = await make_reservation(client, slot_start="2026-03-03T20:00:00Z", expect=422)
    assert outside["type"] == "urn:caretime:problem:outside-availability"
    unknown = await make_reservation(client, slot_start=SLOT, provider_id="dr-hyde", expect=404)
    assert unknown["status"] == 404
    naive = await client.post(
        "/reservations",
        json={"provider_id": "dr-jekyll", "slot_start": "2026-03-03T16:00:00", "client_id": "p"},
    )
    assert naive.status_code == 422


@pytest.mark.usefixtures("booked_day")
async def test_a_taken_slot_is_409(client: httpx.AsyncClient) -> None:
    await make_reservation(client, slot_start=SLOT)
    taken = await make_reservation(client, slot_start=SLOT, client_id="patient-2", expect=409)
    assert taken["type"] == "urn:caretime:problem:slot-taken"


@pytest.mark.usefixtures("booked_day")
async def test_the_idempotency_key_returns_the_same_hold(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await make_reservation(client, slot_start=SLOT, idempotency_key="k-1")
    again = await make_reservation(client, slot_start=SLOT, idempotency_key="k-1")
    assert again == first
    reused = await make_reservation(
        client, slot_start="2026-03-03T17:00:00Z", idempotency_key="k-1", expect=422
    )
    assert reused["type"] == "urn:caretime:problem:idempotency-key-reused"
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(Appointment)) == 1


@pytest.mark.usefixtures("booked_day")
async def test_hold_then_confirm(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    hold = await make_reservation(client, slot_start=SLOT)
    clock.advance(timedelta(minutes=29, seconds=59))
    confirmed = (await client.post(f"/reservations/{hold['id']}/confirm")).json()
    assert (confirmed["status"], confirmed["expires_at"]) == ("confirmed", None)
    assert confirmed["fhir"] == {"appointment": "booked", "slot": "busy"}
    clock.advance(timedelta(hours=1))
    again = await client.post(f"/reservations/{hold['id']}/confirm")
    assert (again.status_code, again.json()) == (200, confirmed)
    assert SLOT not in await slot_starts(client, **DAY)


@pytest.mark.usefixtures("booked_day")
async def test_hold_expires_frees_the_slot_and_it_is_reserved_again(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, runtime: Runtime
) -> None:
    hold = await make_reservation(client, slot_start=SLOT)
    clock.advance(timedelta(minutes=29))
    assert await dispatcher.run_pending() == 0
    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_pending() == 1
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Appointment, hold["id"])
        assert stored is not None
        assert stored.status == "expired"
    late = await client.post(f"/reservations/{hold['id']}/confirm")
    assert (late.status_code, late.json()["reservation_status"]) == (409, "expired")
    assert SLOT in await slot_starts(client, **DAY)
    again = await make_reservation(client, slot_start=SLOT, client_id="patient-2")
    assert again["status"] == "held"


@pytest.mark.usefixtures("booked_day")
async def test_a_hold_past_its_deadline_blocks_nothing_before_the_job_runs(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    hold = await make_reservation(client, slot_start=SLOT)
    clock.advance(timedelta(minutes=30))
    shown = (await client.get(f"/reservations/{hold['id']}")).json()
    assert (shown["status"], shown["fhir"]["slot"]) == ("expired", "free")
    assert SLOT in await slot_starts(client, **DAY)
    newer = await make_reservation(client, slot_start=SLOT, client_id="patient-2")
    await dispatcher.run_pending()  # the old hold's job finds nothing left to do
    assert (await client.get(f"/reservations/{newer['id']}")).json()["status"] == "held"
    expired = await client.get("/appointments", params={"status": "expired"})
    assert [a["id"] for a in expired.json()["items"]] == [hold["id"]]


@pytest.mark.usefixtures("booked_day")
async def test_confirm_racing_the_expiry_job_has_exactly_one_winner(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    holds = [
        await make_reservation(client, slot_start=f"2026-03-03T{15 + n // 4}:{n % 4 * 15:02d}:00Z")
        for n in range(12)
    ]
    tenant_id = await _default_tenant_id(runtime)
    deadline = clock.now() + timedelta(minutes=30)

    async def confirm(appointment_id: str) -> bool:
        try:
            async with transaction(runtime.sessions) as session:
                last_moment = deadline - timedelta(milliseconds=1)
                await lifecycle.move(
                    session, tenant_id, appointment_id, "confirmed", now=last_moment
                )
            return True
        except InvalidTransition:
            return False

    async def expire(appointment_id: str) -> bool:
        async with transaction(runtime.sessions) as session:
            return await lifecycle.expire(session, tenant_id, appointment_id, now=deadline)

    for hold in holds:
        outcomes = await asyncio.gather(confirm(hold["id"]), expire(hold["id"]))
        assert sum(outcomes) == 1
        async with transaction(runtime.sessions) as session:
            stored = await session.get(Appointment, hold["id"])
            assert stored is not None
            assert stored.status == ("confirmed" if outcomes[0] else "expired")


@pytest.mark.usefixtures("booked_day")
@pytest.mark.parametrize(
    ("how", "status"),
    [
        (("PATCH", {"status": "denied"}), "denied"),
        (("PATCH", {"status": "cancelled"}), "cancelled"),
        (("POST", "cancel"), "cancelled"),
    ],
)
async def test_denial_and_cancellation_free_the_slot(
    client: httpx.AsyncClient, how: tuple[str, object], status: str
) -> None:
    hold = await make_reservation(client, slot_start=SLOT)
    method, body = how
    url = f"/reservations/{hold['id']}"
    if method == "PATCH":
        response = await client.patch(url, json=body)
    else:
        response = await client.post(f"{url}/{body}")
    assert (response.status_code, response.json()["status"]) == (200, status)
    assert response.json()["fhir"] == {"appointment": "cancelled", "slot": "free"}
    assert SLOT in await slot_starts(client, **DAY)
    await make_reservation(client, slot_start=SLOT, client_id="patient-2")
    confirm = await client.post(f"{url}/confirm")
    assert confirm.status_code == 409


@pytest.mark.usefixtures("booked_day")
async def test_confirmed_appointments_can_be_cancelled_not_denied(
    client: httpx.AsyncClient,
) -> None:
    hold = await make_reservation(client, slot_start=SLOT)
    url = f"/reservations/{hold['id']}"
    assert (await client.patch(url, json={"status": "confirmed"})).json()["status"] == "confirmed"
    denied = await client.patch(url, json={"status": "denied"})
    assert (denied.status_code, denied.json()["reservation_status"]) == (409, "confirmed")
    assert (await client.post(f"{url}/cancel")).json()["status"] == "cancelled"
    assert (await client.post(f"{url}/cancel")).status_code == 200  # a retried cancel
    assert SLOT in await slot_starts(client, **DAY)
    back = await client.patch(url, json={"status": "held"})  # PENDING: nothing goes back
    assert (back.status_code, back.json()["reservation_status"]) == (409, "cancelled")
    assert (await client.patch(url, json={"status": "reopened"})).status_code == 422
    assert (await client.get("/reservations/apt_nope")).status_code == 404


@pytest.mark.usefixtures("booked_day")
async def test_appointments_are_listed_with_filters_and_pages(
    client: httpx.AsyncClient,
) -> None:
    ids = []
    for n, start in enumerate(["17:00", "16:00", "18:00", "16:30"]):
        ids.append((await make_reservation(client, slot_start=f"2026-03-03T{start}:00Z"))["id"])
        if n % 2:
            await client.post(f"/reservations/{ids[-1]}/confirm")
    page = await client.get("/appointments", params={"provider_id": "dr-jekyll", "limit": 3})
    body = page.json()
    assert [a["slot_start"][11:16] for a in body["items"]] == ["16:00", "16:30", "17:00"]
    rest = await client.get("/appointments", params={"limit": 3, "cursor": body["next_cursor"]})
    assert [a["slot_start"][11:16] for a in rest.json()["items"]] == ["18:00"]
    assert rest.json()["next_cursor"] is None
    confirmed = await client.get("/appointments", params={"status": "confirmed"})
    assert {a["id"] for a in confirmed.json()["items"]} == {ids[1], ids[3]}
    window = {"start": "2026-03-03T16:15:00Z", "end": "2026-03-03T18:00:00Z", "status": "held"}
    held = await client.get("/appointments", params=window)
    assert [a["id"] for a in held.json()["items"]] == [ids[0]]


@pytest.mark.usefixtures("booked_day")
async def test_other_tenants_see_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    hold = await make_reservation(client, slot_start=SLOT)
    _, key = await make_tenant(runtime, name="other clinic")
    other = bearer(key)
    assert (await client.get(f"/reservations/{hold['id']}", headers=other)).status_code == 404
    assert (await client.get("/providers/dr-jekyll", headers=other)).status_code == 404
    taken = await client.post(f"/reservations/{hold['id']}/confirm", headers=other)
    assert taken.status_code == 404
    listed = await client.get("/appointments", headers=other)
    assert listed.json()["items"] == []


async def _default_tenant_id(runtime: Runtime) -> str:
    from caretime.tenancy import service as tenancy

    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
        return tenant.id


@pytest.mark.postgres_only
async def test_a_providers_day_limit_holds_under_concurrent_reservations(
    live_server: LiveServer,
) -> None:
    """Reservations read their place before their write transaction; the day's count is
    still taken inside it (one writer per provider-day), so a race never passes the limit."""
    day = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=bearer(TEST_API_KEY), timeout=60
    ) as http:
        provider = {"id": "dr-busy", "name": "Dr", "tz": "UTC", "max_per_day": 3}
        assert (await http.post("/providers", json=provider)).status_code == 201
        window = {"date": day, "start": "08:00", "end": "16:00"}
        added = await http.post("/providers/dr-busy/availability", json=window)
        assert added.status_code == 200, added.text

        async def reserve(n: int) -> int:
            slot = f"{day}T{8 + n // 4:02d}:{n % 4 * 15:02d}:00Z"
            body = {"provider_id": "dr-busy", "slot_start": slot, "client_id": f"p-{n}"}
            return (await http.post("/reservations", json=body)).status_code

        statuses = Counter(await asyncio.gather(*(reserve(n) for n in range(24))))
    assert statuses == {201: 3, 409: 21}


def _windows_of(*spans: tuple[str, str]) -> list[Window]:
    return [
        Window(date(2026, 3, 3), 0, 0, datetime.fromisoformat(a), datetime.fromisoformat(b))
        for a, b in spans
    ]


@pytest.mark.parametrize(
    ("windows", "shape"),
    [
        (_windows_of(("2026-03-03T13:00Z", "2026-03-03T20:00Z")), VisitShape(15)),
        (_windows_of(("2026-03-03T13:00Z", "2026-03-03T20:00Z")), VisitShape(45, 10, 5)),
        (_windows_of(("2026-03-03T13:10Z", "2026-03-03T14:00Z")), VisitShape(30, 0, 15)),
        (
            _windows_of(
                ("2026-03-03T13:00Z", "2026-03-03T14:00Z"),
                ("2026-03-03T14:30Z", "2026-03-03T15:20Z"),
            ),
            VisitShape(20, 5, 0),
        ),
    ],
)
def test_a_start_is_checked_as_the_slot_list_offers_it(
    windows: list[Window], shape: VisitShape
) -> None:
    grid = timedelta(minutes=15)
    offered = {start for start, _ in visit_starts(windows, grid, shape)}
    moment = datetime.fromisoformat("2026-03-03T12:00Z")
    for _ in range(12 * 12):
        assert is_visit_start(windows, grid, shape, moment) == (moment in offered)
        moment += timedelta(minutes=5)


@pytest.mark.parametrize(
    ("status", "deadline_minutes", "visit_type", "microseconds"),
    [
        ("held", 30, None, 0),
        ("held", -1, "consult", 123456),  # past its deadline: shown expired
        ("confirmed", 30, None, 500),
        ("cancelled", 30, "consult", 0),
        ("no_show", 30, None, 0),
    ],
)
def test_the_reservation_answer_is_the_models_json_byte_for_byte(
    status: str, deadline_minutes: int, visit_type: str | None, microseconds: int
) -> None:
    now = datetime(2026, 3, 2, 15, 0, 0, microseconds, tzinfo=UTC)
    start = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)
    appointment = Appointment(
        id="apt_1", provider_id="dr-jekyll", client_id="patient-1", slot_start=start,
        slot_end=start + timedelta(minutes=15), visit_type_id=visit_type, status=status,
        hold_expires_at=now + timedelta(minutes=deadline_minutes), created_at=now,
        confirmed_at=now if status != "held" else None, arrived_at=None,
    )  # fmt: skip
    expected = render(appointment, now).model_dump_json().encode()
    assert render_json(appointment, now) == expected


@pytest.mark.usefixtures("booked_day")
async def test_a_key_revoked_elsewhere_cannot_reserve_even_from_the_key_cache(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    """The reservation's own read re-reads the key's revocation (the route has no other
    statement for it), so a key revoked by another process is refused at once here."""
    await make_reservation(client, slot_start=SLOT)  # the key is now in the key cache
    async with transaction(runtime.sessions) as session:  # as another process would
        await session.execute(update(ApiKey).values(revoked_at=clock.now()))
    body = {"provider_id": "dr-jekyll", "slot_start": "2026-03-03T17:00:00Z", "client_id": "p"}
    refused = await client.post("/reservations", json=body)
    assert (refused.status_code, refused.json()["detail"]) == (
        401,
        "this API key has been revoked",
    )
