"""Liveness and readiness."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from caretime.app import create_app
from caretime.config import Settings


async def test_health_is_exactly_ok_without_auth(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/health")
    assert response.status_code == 200
    assert response.content == b'{"status":"ok"}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]


async def test_health_probes_are_counted(anon_client: httpx.AsyncClient) -> None:
    await anon_client.get("/health")
    metrics = (await anon_client.get("/metrics")).text
    assert 'caretime_http_requests_total{method="GET",route="/health",status="200"}' in metrics


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


async def test_metrics_and_readiness_are_public_without_a_token(
    anon_client: httpx.AsyncClient,
) -> None:
    assert (await anon_client.get("/metrics")).status_code == 200
    assert (await anon_client.get("/health/ready")).status_code == 200


async def test_the_metrics_token_guards_metrics_and_readiness_not_liveness(
    settings: Settings,
) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    app = create_app(guarded)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health")).status_code == 200
            for path in ("/metrics", "/health/ready"):
                refused = await client.get(path)
                assert refused.status_code == 401
                assert refused.headers["content-type"] == "application/problem+json"
                assert "CARETIME_METRICS_TOKEN" in refused.json()["detail"]
                wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401
                right = await client.get(path, headers={"Authorization": "Bearer scrape-me"})
                assert right.status_code == 200
