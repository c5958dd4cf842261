"""`make run`'s demo data: loaded once into the default tenant, visible through the API."""

from __future__ import annotations

import httpx

from caretime.demo import CAREGIVERS, PATIENTS, PROVIDERS, load_demo_data
from caretime.runtime import Runtime


async def test_demo_data_shows_in_every_domain_and_loads_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await load_demo_data(runtime)
    await load_demo_data(runtime)

    calls = (await client.get("/calls")).json()["items"]
    assert len(calls) == len(PATIENTS)
    assert {c["status"] for c in calls} == {"scheduled"}
    providers = (await client.get("/providers")).json()["items"]
    assert {p["id"] for p in providers} == {p[0] for p in PROVIDERS}
    slots = await client.get(
        "/slots", params={"start": "2026-03-04T00:00:00Z", "end": "2026-03-05T00:00:00Z"}
    )
    assert slots.json()["slots"]
    caregivers = (await client.get("/caregivers")).json()["items"]
    assert len(caregivers) == len(CAREGIVERS)
    shift = (await client.get("/shifts/demo-rn-day")).json()
    assert shift["status"] == "open"
