"""Liveness (`/health`), readiness (`/health/ready`, with pluggable component checks) and
Prometheus metrics (`/metrics`); the last two behind the metrics token when one is set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from caretime import sharedmetrics
from caretime.operator_access import require_operator_token
from caretime.runtime import Runtime


class Check(BaseModel):
    ok: bool
    detail: dict[str, Any] = {}


ReadinessCheck = Callable[[Runtime], Awaitable[Check]]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})
    status: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {
                        "database": {"ok": True, "detail": {}},
                        "dispatcher": {"ok": True, "detail": {"lag_seconds": 0.02}},
                    },
                }
            ]
        }
    )
    status: str
    checks: dict[str, Check]


# What `/health` answers, rendered once: the endpoint returns it as it is, without FastAPI
# validating and rendering a model on every probe (~6 µs of a ~40 µs request).
_ALIVE = Health(status="ok").model_dump_json().encode()


@router.get("/health", response_model=Health)
async def health() -> Response:
    """Liveness: the process answers. No API key; use it for load-balancer checks."""
    return Response(_ALIVE, media_type="application/json")


OPERATORS_ONLY = [Depends(require_operator_token)]


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
    dependencies=OPERATORS_ONLY,
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and the dispatcher's heartbeat and lag are fresh. 503
    with the failing checks when not ready; no API key."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    results = {name: await _safely(check, runtime) for name, check in checks.items()}
    ok = all(result.ok for result in results.values())
    body = Readiness(status="ready" if ok else "unavailable", checks=results)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False, dependencies=OPERATORS_ONLY)
async def metrics() -> Response:
    return Response(generate_latest(sharedmetrics.registry()), media_type=CONTENT_TYPE_LATEST)


async def _safely(check: ReadinessCheck, runtime: Runtime) -> Check:
    try:
        return await check(runtime)
    except Exception as exc:
        return Check(ok=False, detail={"error": type(exc).__name__})


async def database_check(runtime: Runtime) -> Check:
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return Check(ok=True, detail={"dialect": runtime.engine.dialect.name})
