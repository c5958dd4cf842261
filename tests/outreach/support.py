"""Builders for outreach tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from caretime.dispatch.models import Job
from caretime.runtime import Runtime

# A verbatim copy of the sample body from the system POST /schedule replaces (shared/data).
SAMPLE_PAYLOAD = Path(__file__).parent / "data" / "schedule-sample-payload.json"


def sample_payload() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(SAMPLE_PAYLOAD.read_text())
    return loaded


def make_items(*, count: int, exchange: int = 555, area: int = 212) -> list[dict[str, str]]:
    return [{"name": f"Patient {i}", "phone": f"{area}-{exchange}-{i:04d}"} for i in range(count)]


async def set_calling_policy(client: httpx.AsyncClient, **calling: Any) -> None:
    response = await client.patch("/tenants/me/policy", json={"calling": calling})
    assert response.status_code == 200, response.text


async def queued_jobs_for(runtime: Runtime, call_id: str) -> list[Job]:
    async with runtime.sessions() as session:
        jobs = await session.scalars(
            select(Job).where(Job.status == "queued", Job.payload["call_id"].as_string() == call_id)
        )
        return list(jobs)
