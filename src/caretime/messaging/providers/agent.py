"""The AI voice-agent provider: each due call is POSTed to the tenant's agent URL as a JSON
request signed with the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), so the agent platform verifies it with an off-the-shelf library.

A 2xx answer accepts the call; the agent then reports progress and the outcome with
`POST /calls/{id}/outcome` (outreach). Nothing is polled.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from caretime.config import Settings
from caretime.destinations import InternalAddress, guarded_transport
from caretime.messaging.providers.base import (
    OutboundRequest,
    PermanentProviderError,
    PollRequest,
    SendReceipt,
    StatusReport,
    TenantEndpoint,
    TransientProviderError,
)

EVENT_TYPE = "call.requested"


class AgentProvider:
    name = "agent"
    from_number: str | None = None
    per_tenant = True

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.public_url = settings.public_url.rstrip("/")
        self.rate_per_second = settings.agent_rate_limit
        self.timeout = settings.agent_timeout_seconds
        # Tenant-given URL: in production every connection is checked (caretime/destinations).
        self.transport = transport or guarded_transport(env=settings.env, limits=httpx.Limits())
        # One client for the process: its connections are kept, and building a client (its
        # TLS context) per call cost more than the request itself.
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self.transport, timeout=self.timeout)
        return self._http

    async def send(self, request: OutboundRequest) -> SendReceipt:
        if request.channel != "voice":
            raise PermanentProviderError("the agent provider places calls only")
        if request.endpoint is None:
            raise PermanentProviderError(
                "this tenant has no voice agent: set its URL with PUT /tenants/me/agent"
            )
        body = json.dumps(agent_request(request, self.public_url), separators=(",", ":"))
        await self._post(request.endpoint, request.message_id, body)
        report = StatusReport("queued", "accepted", {"accepted_by": "agent"})
        return SendReceipt(request.message_id, report)

    async def poll(self, request: PollRequest) -> StatusReport:
        return StatusReport(None)  # the agent reports; there is nothing to ask

    async def _post(self, endpoint: TenantEndpoint, message_id: str, body: str) -> None:
        headers = signed_headers(endpoint.secret, message_id, body)
        try:
            response = await self._client().post(endpoint.url, content=body, headers=headers)
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, InternalAddress):
                raise PermanentProviderError(f"voice agent not reachable: {exc}") from exc
            raise TransientProviderError(f"voice agent unreachable: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransientProviderError(f"voice agent unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(f"voice agent answered {response.status_code}")
        if response.status_code >= 300:
            raise PermanentProviderError(f"voice agent refused the call: {response.status_code}")


def agent_request(request: OutboundRequest, public_url: str) -> dict[str, Any]:
    """What the agent is told: the sender's context (call id, number, zone, local time,
    purpose, variables, allowed-until), the script to say, and where to report: the
    sender's `outcome_path` on this server's public URL."""
    context = dict(request.context or {})
    path = context.pop("outcome_path", None)
    return {
        "type": EVENT_TYPE,
        "message_id": request.message_id,
        "to": request.to,
        **context,
        "script": request.body,
        "outcome_url": None if path is None else public_url + str(path),
    }


def signed_headers(secret: str, message_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers. The timestamp is the wall clock at sending (receivers check
    it against theirs to refuse replays), and the id stays the same when a send is retried,
    so a receiver can drop a repeat."""
    timestamp = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }
