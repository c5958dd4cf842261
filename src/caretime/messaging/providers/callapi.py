"""The call API: a generic HTTP voice service. `POST /api/call {"phone_number"}` starts a
call; its status is read by polling `GET /api/call/{id}` from dispatch jobs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from caretime.config import Settings
from caretime.messaging.providers.base import (
    OutboundRequest,
    PermanentProviderError,
    PollRequest,
    SendReceipt,
    StatusReport,
    TransientProviderError,
    json_object,
)
from caretime.messaging.statuses import is_final

CALL_STATUSES = {
    "initiated": "queued",
    "queued": "queued",
    "ringing": "ringing",
    "connected": "in_progress",
    "in_progress": "in_progress",
    "completed": "completed",
    "busy": "busy",
    "no_answer": "no_answer",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",
}


class CallApiProvider:
    name = "callapi"
    from_number: str | None = None

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = settings.callapi_url.rstrip("/")
        self.rate_per_second = settings.callapi_rate_limit
        self.poll_every = timedelta(seconds=settings.callapi_poll_seconds)
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    async def send(self, request: OutboundRequest) -> SendReceipt:
        if request.channel != "voice":
            raise PermanentProviderError("the call API places calls only")
        body = await self._call("POST", "/api/call", {"phone_number": request.to})
        call = _call_of(body)
        return SendReceipt(str(call["id"]), self._report(call, request.now))

    async def poll(self, request: PollRequest) -> StatusReport:
        body = await self._call("GET", f"/api/call/{request.provider_id}", None)
        return self._report(_call_of(body), request.now)

    def _report(self, call: dict[str, Any], now: datetime) -> StatusReport:
        raw = str(call.get("status", ""))
        status = CALL_STATUSES.get(raw.lower())
        fields = {k: call.get(k) for k in ("id", "status", "updated_at", "duration")}
        poll_at = (
            None if status is not None and is_final("voice", status) else now + self.poll_every
        )
        return StatusReport(status, raw, fields, poll_at=poll_at)

    def _http(self) -> httpx.AsyncClient:
        # One pooled client for the provider's life: building one costs an SSL context
        # (20-230 ms of CPU measured here), which per request was most of a hand-over.
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self.transport, timeout=15)
        return self._client

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        try:
            response = await self._http().request(method, self.base_url + path, json=payload)
        except httpx.TransportError as exc:
            raise TransientProviderError(f"call API unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(f"call API answered {response.status_code}")
        body = json_object(response)
        if response.status_code >= 400:
            raise PermanentProviderError(f"call API: {body.get('error') or response.status_code}")
        return body


def _call_of(body: dict[str, Any]) -> dict[str, Any]:
    call = body.get("call", body)
    if not isinstance(call, dict) or "id" not in call:
        raise TransientProviderError("call API answered without a call")
    return call
