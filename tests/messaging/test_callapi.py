"""The call API provider against a local server that behaves as the real one is described."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.providers.base import PermanentProviderError, PollRequest
from caretime.messaging.providers.callapi import CallApiProvider
from caretime.runtime import Runtime
from tests.conftest import Database
from tests.messaging.support import (
    default_tenant_id,
    events_of,
    jobs_of,
    load_message,
    make_message,
)
from tests.support import TEST_API_KEY

REJECTED = "+12065550111"
LIFECYCLE = ("initiated", "ringing", "connected", "completed")


def call_api() -> FastAPI:
    """Each GET of a call moves it one step along initiated → ringing → connected → completed."""
    api = FastAPI()
    calls: dict[str, dict[str, Any]] = {}

    @api.post("/api/call")
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        phone = body.get("phone_number")
        if not phone or phone == REJECTED:
            return JSONResponse({"error": "Invalid phone_number"}, status_code=400)
        stamp = datetime.now(UTC).isoformat()
        call = {
            "id": f"call-{len(calls) + 1}",
            "phone_number": phone,
            "status": "initiated",
            "created_at": stamp,
            "updated_at": stamp,
            "duration": None,
        }
        calls[call["id"]] = call
        return JSONResponse({"success": True, "call": call}, status_code=201)

    @api.get("/api/call/{call_id}")
    async def read(call_id: str) -> JSONResponse:
        call = calls.get(call_id)
        if call is None:
            return JSONResponse({"error": "Call not found"}, status_code=404)
        step = LIFECYCLE.index(call["status"])
        call["status"] = LIFECYCLE[min(step + 1, len(LIFECYCLE) - 1)]
        if call["status"] == "completed":
            call["duration"] = 42
        return JSONResponse({"success": True, "call": call})

    return api


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def call_api_url() -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(call_api(), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the call API server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def settings(database: Database, call_api_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        api_key=TEST_API_KEY,
        workers=0,
        voice_provider="callapi",
        callapi_url=call_api_url,
        callapi_poll_seconds=5,
    )


async def _poll_step(runtime: Runtime, dispatcher: Dispatcher) -> None:
    runtime.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
    await dispatcher.run_pending()


async def test_call_is_placed_and_polled_to_completion(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    message = await make_message(
        runtime, tenant_id=await default_tenant_id(runtime), channel="voice"
    )
    await dispatcher.run_pending()
    placed = await load_message(runtime, message.id)
    assert (placed.provider, placed.status) == ("callapi", "queued")
    assert (placed.provider_id or "").startswith("call-")
    seen = []
    for _ in range(3):
        await _poll_step(runtime, dispatcher)
        seen.append((await load_message(runtime, message.id)).status)
    assert seen == ["ringing", "in_progress", "completed"]
    events = await events_of(runtime, message.id)
    assert [e.provider_status for e in events] == list(LIFECYCLE)
    assert events[-1].payload["duration"] == 42
    polls = await jobs_of(runtime, "messaging.poll")
    assert [job.status for job in polls] == ["done", "done", "done"]


async def test_sms_stays_on_its_own_provider(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    assert (await load_message(runtime, message.id)).provider == "simulator"


async def test_rejected_call_fails_with_the_apis_error(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    message = await make_message(
        runtime, tenant_id=await default_tenant_id(runtime), channel="voice", to=REJECTED
    )
    await dispatcher.run_pending()
    failed = await load_message(runtime, message.id)
    assert (failed.status, failed.error) == ("failed", "call API: Invalid phone_number")


def test_sms_cannot_use_the_call_api() -> None:
    with pytest.raises(ValueError, match="places calls only"):
        Settings(sms_provider="callapi")


@pytest.fixture
def unreachable(settings: Settings) -> Settings:
    settings.callapi_url = f"http://127.0.0.1:{_free_port()}"
    return settings


async def test_unreachable_api_is_retried(
    unreachable: Settings, runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    message = await make_message(
        runtime, tenant_id=await default_tenant_id(runtime), channel="voice"
    )
    await dispatcher.run_pending()
    assert (await load_message(runtime, message.id)).status == "queued"
    [job] = await jobs_of(runtime, "messaging.send")
    assert (job.status, job.attempts) == ("queued", 1)
    assert "unreachable" in (job.last_error or "")


async def test_unknown_call_is_a_permanent_error(settings: Settings) -> None:
    provider = CallApiProvider(settings)
    now = datetime.now(UTC)
    request = PollRequest(
        "msg_1", "t", "voice", "+12065550100", "ringing", "call-404", None, now, now
    )
    with pytest.raises(PermanentProviderError, match="Call not found"):
        await provider.poll(request)
