"""Helpers for event and webhook tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from caretime.db import transaction
from caretime.events import emit
from caretime.events.models import Event
from caretime.runtime import Runtime


async def tenant_id_of(client: httpx.AsyncClient) -> str:
    tenant: str = (await client.get("/tenants/me")).json()["id"]
    return tenant


async def emit_now(
    runtime: Runtime, tenant_id: str, type_: str, subject: tuple[str, str], **data: Any
) -> str:
    async with transaction(runtime.sessions) as session:
        event = await emit(session, tenant_id=tenant_id, type=type_, subject=subject, data=data,
                           now=runtime.clock.now())  # fmt: skip
        return event.id


async def events_of(runtime: Runtime, *types: str) -> list[Event]:
    async with transaction(runtime.sessions) as session:
        statement = select(Event).order_by(Event.seq)
        if types:
            statement = statement.where(Event.type.in_(types))
        return list((await session.scalars(statement)).all())


async def add_endpoint(client: httpx.AsyncClient, url: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/webhooks/endpoints", json={"url": url, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
