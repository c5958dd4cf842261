"""A shift's start offset must agree with the zone it will be described in."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.shifts.importer import import_document
from caretime.tenancy.policy import ShiftPolicy
from tests.shifts.support import default_tenant_id

BASE = {"role_required": "RN", "end_time": "2026-03-03T06:00:00Z"}


@pytest.mark.parametrize(
    ("start", "tz", "status"),
    [
        ("2026-03-02T14:00:00-05:00", None, 201),  # New York's own offset
        ("2026-03-02T19:00:00Z", None, 201),  # UTC is an instant, not a local time
        ("2026-03-02T19:00:00+00:00", None, 201),
        ("2026-03-02T11:00:00-08:00", "America/Los_Angeles", 201),  # the zone is given
        ("2026-03-02T11:00:00-08:00", None, 422),
        ("2026-03-02T20:00:00+01:00", None, 422),
    ],
)
async def test_start_offset_and_zone(
    app: FastAPI, client: httpx.AsyncClient, start: str, tz: str | None, status: int
) -> None:
    body = {**BASE, "start_time": start, **({"tz": tz} if tz else {})}
    response = await client.post("/shifts", json=body)
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["start_time"].endswith("Z")


async def test_the_422_names_both_offsets_and_what_to_do(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = {**BASE, "start_time": "2026-03-02T11:00:00-08:00"}
    problem = (await client.post("/shifts", json=body)).json()
    message = (
        "start_time is -08:00 but the tenant's default zone America/New_York is -05:00 then; "
        "send tz"
    )
    assert problem["detail"] == message
    assert problem["errors"] == [{"loc": ["body", "start_time"], "msg": message}]
    assert (await client.get("/shifts")).json()["items"] == []


async def test_summer_offsets_are_read_at_that_instant(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    summer = {"role_required": "RN", "start_time": "2026-07-02T14:00:00-04:00"}
    ok = await client.post("/shifts", json={**summer, "end_time": "2026-07-02T22:00:00-04:00"})
    assert ok.status_code == 201
    winter = {"role_required": "RN", "start_time": "2026-07-02T14:00:00-05:00"}
    bad = await client.post("/shifts", json={**winter, "end_time": "2026-07-02T23:00:00Z"})
    assert (
        "-05:00 but the tenant's default zone America/New_York is -04:00 then"
        in (bad.json()["detail"])
    )


async def test_patch_checks_the_new_start_against_the_shift_zone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = {**BASE, "id": "s1", "start_time": "2026-03-02T19:00:00Z"}
    assert (await client.post("/shifts", json=body)).status_code == 201
    moved = await client.patch("/shifts/s1", json={"start_time": "2026-03-02T12:00:00-08:00"})
    assert moved.status_code == 422
    assert "the shift's zone America/New_York is -05:00" in moved.json()["detail"]
    ok = await client.patch(
        "/shifts/s1", json={"start_time": "2026-03-02T12:00:00-08:00", "tz": "America/Los_Angeles"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["start_time"] == "2026-03-02T20:00:00Z"


async def test_the_importer_reports_it_per_record(app: FastAPI, runtime: Runtime) -> None:
    tenant = await default_tenant_id(runtime)
    document = {
        "shifts": [
            {"id": "west", **BASE, "start_time": "2026-03-02T11:00:00-08:00"},
            {"id": "east", **BASE, "start_time": "2026-03-02T14:00:00-05:00"},
        ]
    }
    async with transaction(runtime.sessions) as session:
        report = await import_document(
            session, tenant, document, policy=ShiftPolicy(), now=runtime.clock.now()
        )
    outcomes = {r.id: (r.outcome, r.reasons) for r in report}
    assert outcomes["east"] == ("imported", [])
    assert outcomes["west"][0] == "rejected"
    assert outcomes["west"][1] == [
        "start_time is -08:00 but the tenant's default zone America/New_York is -05:00 then; "
        "send tz"
    ]
