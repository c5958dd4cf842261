"""Liveness and readiness."""

from __future__ import annotations

import httpx

from caretime.app import create_app
from caretime.config import Settings


async def test_health_is_exactly_ok_without_auth(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_the_database(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["ok"] is True


async def test_ready_is_503_when_the_database_is_down() -> None:
    settings = Settings(
        env="test",
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/unreachable",
        workers=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health")).status_code == 200
            ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"]["ok"] is False
