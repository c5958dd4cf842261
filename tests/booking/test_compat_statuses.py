"""PATCH /reservations/{id} speaks the AWS appointment API's statuses (PENDING, CONFIRMED,
DENIED, EXPIRED, any case) besides ours, and a coordinator may expire a hold by hand — on
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from caretime.dispatch.worker import Dispatcher
from tests.booking.support import make_availability, make_provider, make_reservation, slot_starts

SLOT = "2026-03-04T16:00:00Z"
DAY = {"start": "2026-03-04T00:00:00Z", "end": "2026-03-05T00:00:00Z"}


@pytest.fixture
async def hold(client: httpx.AsyncClient) -> dict[str, Any]:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "08:00", "end": "15:00"}
    )
    return await make_reservation(client, slot_start=SLOT)


async def patch(client: httpx.AsyncClient, reservation_id: str, status: str) -> httpx.Response:
    return await client.patch(f"/reservations/{reservation_id}", json={"status": status})


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        ("CONFIRMED", "confirmed"),
        ("Confirmed", "confirmed"),
        ("confirmed", "confirmed"),
        ("DENIED", "denied"),
        ("denied", "denied"),
        ("EXPIRED", "expired"),
        ("expired", "expired"),
        ("PENDING", "held"),
        ("cancelled", "cancelled"),
        ("CANCELED", "cancelled"),
    ],
)
async def test_aws_and_our_statuses_in_any_case(
    client: httpx.AsyncClient, hold: dict[str, Any], sent: str, status: str
) -> None:
    response = await patch(client, hold["id"], sent)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


async def test_a_hold_expired_by_hand_frees_its_slot_and_is_recorded(
    client: httpx.AsyncClient, hold: dict[str, Any], dispatcher: Dispatcher
) -> None:
    assert SLOT not in await slot_starts(client, **DAY)
    expired = (await patch(client, hold["id"], "expired")).json()
    assert (expired["status"], expired["expires_at"], expired["fhir"]["slot"]) == (
        "expired",
        None,
        "free",
    )
    assert SLOT in await slot_starts(client, **DAY)
    history = (await client.get(f"/reservations/{hold['id']}/history")).json()
    expired_events = [e for e in history if e["type"] == "appointment.expired"]
    assert [e["data"]["status"] for e in expired_events] == ["expired"]
    assert expired_events[0]["actor"].startswith("key:")
    assert (await patch(client, hold["id"], "EXPIRED")).status_code == 200  # a retry
    confirm = await patch(client, hold["id"], "CONFIRMED")
    assert (confirm.status_code, confirm.json()["reservation_status"]) == (409, "expired")


async def test_a_confirmed_visit_cannot_be_expired_or_go_back_to_pending(
    client: httpx.AsyncClient, hold: dict[str, Any]
) -> None:
    await patch(client, hold["id"], "confirmed")
    for status in ("EXPIRED", "PENDING"):
        response = await patch(client, hold["id"], status)
        assert response.status_code == 409
        assert response.json()["reservation_status"] == "confirmed"


async def test_an_unknown_status_says_which_are_known(
    client: httpx.AsyncClient, hold: dict[str, Any]
) -> None:
    response = await patch(client, hold["id"], "BOGUS")
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["loc"] == ["body", "status"]
    assert "PENDING, CONFIRMED, DENIED, EXPIRED" in error["msg"]
    assert "ValueError" not in error["msg"]
