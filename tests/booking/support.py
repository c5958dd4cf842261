"""Builders for booking tests (over the API, the way callers use it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import httpx

from caretime.booking.availability import Window
from caretime.booking.grid import Span, VisitShape

NEW_YORK = "America/New_York"


async def make_provider(
    client: httpx.AsyncClient, *, id: str = "dr-jekyll", tz: str = NEW_YORK
) -> dict[str, Any]:
    response = await client.post("/providers", json={"id": id, "name": "Dr. Jekyll", "tz": tz})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_availability(
    client: httpx.AsyncClient, *, provider_id: str = "dr-jekyll", windows: Any, force: bool = False
) -> dict[str, Any]:
    response = await client.post(
        f"/providers/{provider_id}/availability",
        json=windows,
        params={"force": "true"} if force else None,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_reservation(
    client: httpx.AsyncClient,
    *,
    slot_start: str,
    provider_id: str = "dr-jekyll",
    client_id: str = "patient-1",
    expect: int = 201,
    idempotency_key: str | None = None,
    visit_type: str | None = None,
) -> dict[str, Any]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    body = {"provider_id": provider_id, "slot_start": slot_start, "client_id": client_id}
    if visit_type is not None:
        body["visit_type"] = visit_type
    response = await client.post("/reservations", json=body, headers=headers)
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_visit_type(
    client: httpx.AsyncClient,
    *,
    id: str,
    minutes: int,
    provider_id: str = "dr-jekyll",
    before: int = 0,
    after: int = 0,
) -> dict[str, Any]:
    body = {
        "id": id,
        "name": id,
        "minutes": minutes,
        "buffer_before": before,
        "buffer_after": after,
    }
    response = await client.post(f"/providers/{provider_id}/visit-types", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def slot_starts(
    client: httpx.AsyncClient,
    *,
    start: str,
    end: str,
    provider_id: str | None = "dr-jekyll",
    visit_type: str | None = None,
) -> list[str]:
    params: dict[str, Any] = {"start": start, "end": end, "limit": 1000}
    if provider_id is not None:
        params["provider_id"] = provider_id
    if visit_type is not None:
        params["visit_type"] = visit_type
    response = await client.get("/slots", params=params)
    assert response.status_code == 200, response.text
    return [slot["start"] for slot in response.json()["slots"]]


def visit_starts(windows: Iterable[Window], grid: timedelta, shape: VisitShape) -> Iterator[Span]:
    """(start, occupied end) of each grid start, counted from a window's start, at which the
    visit and its buffers fit inside that window: every start tried in turn, the plain
    definition the product's counted and direct checks are held to."""
    for window in windows:
        start = window.start
        while True:
            occupied_start, occupied_end = shape.occupied(start)
            if occupied_end > window.end:
                break
            if occupied_start >= window.start:
                yield start, occupied_end
            start += grid
