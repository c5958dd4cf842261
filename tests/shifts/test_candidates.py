"""Why not offered: every caregiver with the role, offered or each reason not."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from caretime.clock import FrozenClock
from caretime.runtime import Runtime
from tests.shifts.support import default_tenant_id, make_caregiver, make_shift, phone


@pytest.fixture
async def roster(app: FastAPI, runtime: Runtime, client: httpx.AsyncClient) -> str:
    """RNs in every situation, an LPN (not listed), shift s1 in four hours."""
    tenant = await default_tenant_id(runtime)
    for n, cid, active in [
        (1, "ok", True),
        (2, "inactive", False),
        (3, "stopped", True),
        (4, "ok-too", True),
        (5, "busy", True),
        (6, "decliner", True),
        (7, "dropper", True),
        (8, "berlin-night", True),
    ]:
        await make_caregiver(runtime, tenant_id=tenant, id=cid, roles=["RN"], n=n, active=active)
    await make_caregiver(runtime, tenant_id=tenant, id="lpn", roles=["LPN"], n=9)
    await client.patch("/caregivers/berlin-night", json={"tz": "Asia/Tokyo"})  # 00:00 there
    await make_shift(runtime, tenant_id=tenant, id="s1", starts_in=timedelta(hours=20))
    await make_shift(runtime, tenant_id=tenant, id="other", starts_in=timedelta(hours=21))
    return tenant


async def _say(client: httpx.AsyncClient, n: int, body: str, **hint: str) -> str:
    response = await client.post("/messages/inbound", json={"from": phone(n), "body": body, **hint})
    assert response.status_code == 200, response.text
    action: str = response.json()["action"]
    return action


async def test_candidates_list_every_reason_before_and_after_the_fanout(
    client: httpx.AsyncClient, clock: FrozenClock, roster: str
) -> None:
    assert await _say(client, 3, "STOP") == "opted_out"
    await client.post("/shifts/other/fanout")
    assert await _say(client, 5, "yes", shift_id="other") == "assigned"
    before = (await client.get("/shifts/s1/candidates")).json()
    assert before["channels"] == ["sms", "voice"]
    states = {c["caregiver_id"]: c["state"] for c in before["items"]}
    assert "lpn" not in states
    assert states["ok"] == "eligible"
    assert states["inactive"] == "not_offered"
    reasons = {c["caregiver_id"]: c["reasons"] for c in before["items"]}
    assert reasons["inactive"] == ["inactive"]
    assert reasons["stopped"] == ["opted out of sms", "opted out of voice"]
    assert reasons["busy"] == ["overlapping shift other"]
    assert reasons["berlin-night"] == ["quiet hours until 08:00 local"]
    assert before["reachable"] == 5  # ok, ok-too, decliner, dropper, berlin-night (held)

    await client.post("/shifts/s1/fanout")
    assert await _say(client, 6, "no thanks", shift_id="s1") == "declined"
    assert await _say(client, 7, "yes", shift_id="s1") == "assigned"
    assert await _say(client, 7, "sorry no", shift_id="s1") == "dropped"
    after = (await client.get("/shifts/s1/candidates")).json()
    by_id = {c["caregiver_id"]: c for c in after["items"]}
    assert by_id["decliner"]["reasons"] == ["declined"]
    assert by_id["dropper"]["reasons"] == ["dropped this shift"]
    assert by_id["ok"]["state"] == "offered"
    assert by_id["ok"]["offer"]["generation"] == 2
    assert by_id["berlin-night"]["offer"]["held_until"] == "2026-03-02T23:00:00Z"


async def test_caregivers_show_their_opt_outs(client: httpx.AsyncClient, roster: str) -> None:
    assert await _say(client, 3, "STOP") == "opted_out"
    listed = (await client.get("/caregivers", params={"role": "RN"})).json()["items"]
    assert {c["id"]: c["opted_out"] for c in listed}["stopped"] == ["sms", "voice"]
    assert (await client.get("/caregivers/ok")).json()["opted_out"] == []
    assert (await client.get("/caregivers/berlin-night")).json()["zones"] == ["Asia/Tokyo"]
    assert (await client.get("/caregivers/ok")).json()["zones"] == ["America/New_York"]
