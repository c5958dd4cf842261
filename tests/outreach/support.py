"""Builders for outreach tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from caretime.dispatch.models import Job
from caretime.outreach.models import PENDING, Call
from caretime.outreach.writing import PLACE_MINUTE
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
    """The queued jobs that will place this call: its minute's job while it is pending
    (calls due in one minute share one job), none once it is cancelled or started."""
    async with runtime.sessions() as session:
        call = await session.get(Call, call_id)
        if call is None or call.status != PENDING:
            return []
        jobs = await session.scalars(
            select(Job).where(
                Job.status == "queued",
                Job.tenant_id == call.tenant_id,
                Job.kind == PLACE_MINUTE,
                Job.payload["minute"].as_integer() == call.scheduled_minute,
            )
        )
        return list(jobs)
