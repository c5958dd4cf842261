"""The provider Protocol: how messaging hands a message to a phone network and learns its fate.

A provider sends (returning its id for the message and, optionally, when to poll) and, if it
reports status by polling rather than callbacks, answers `poll`. Errors say whether retrying
can help: `TransientProviderError` (network, 5xx, rate limited) or `PermanentProviderError`
(invalid number, rejected), whose reason is recorded on the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import httpx


@dataclass(frozen=True)
class TenantEndpoint:
    """Where a provider that works per tenant (an AI voice agent) is reached, and the
    secret its requests are signed with."""

    url: str
    secret: str


@dataclass(frozen=True)
class OutboundRequest:
    message_id: str
    tenant_id: str
    channel: str
    to: str
    from_: str | None
    body: str
    idempotency_key: str | None
    now: datetime
    # What the sender said beside the body (see Message.context), for structured providers.
    context: dict[str, Any] | None = None
    endpoint: TenantEndpoint | None = None


@dataclass(frozen=True)
class PollRequest:
    message_id: str
    tenant_id: str
    channel: str
    to: str
    status: str
    provider_id: str
    idempotency_key: str | None
    sent_at: datetime
    now: datetime
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class StatusReport:
    """What the provider says now: a normalized status (None: nothing new), the raw payload
    for the event log, and when to ask again (None: the provider calls back, or it is over)."""

    status: str | None
    provider_status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    poll_at: datetime | None = None


@dataclass(frozen=True)
class SendReceipt:
    provider_id: str
    report: StatusReport


class ProviderError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientProviderError(ProviderError):
    """Retrying later may succeed; `retry_after` is the provider's hint, when it gives one."""

    def __init__(self, reason: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying cannot help; the reason is recorded on the failed message."""


class TooLate(PermanentProviderError):
    """Not sent: its sender allowed it only until a moment now past (`allowed_until` in its
    context: the end of a call's window). A voice message ends `canceled`, an SMS `failed`."""


class Provider(Protocol):
    name: str
    from_number: str | None
    rate_per_second: float

    async def send(self, request: OutboundRequest) -> SendReceipt: ...

    async def poll(self, request: PollRequest) -> StatusReport: ...


def needs_tenant_endpoint(provider: Provider) -> bool:
    """Whether the provider is reached at each tenant's own endpoint (an AI voice agent sets
    `per_tenant = True`), which the send job then looks up and puts in each request."""
    return getattr(provider, "per_tenant", False) is True


SendOutcome = SendReceipt | ProviderError


@runtime_checkable
class BatchSender(Protocol):
    """A provider that accepts many messages in one call (the simulator). The answer has one
    outcome per request, in order: a receipt, or the error for that message alone."""

    async def send_batch(self, requests: Sequence[OutboundRequest]) -> list[SendOutcome]: ...


async def send_each(provider: Provider, requests: Sequence[OutboundRequest]) -> list[SendOutcome]:
    """A batch as one `send` per request, each accepted or refused on its own: how a
    provider with no network cost per message (the simulator) answers `send_batch`."""
    outcomes: list[SendOutcome] = []
    for request in requests:
        try:
            outcomes.append(await provider.send(request))
        except ProviderError as exc:
            outcomes.append(exc)
    return outcomes


def json_object(response: httpx.Response) -> dict[str, Any]:
    """An HTTP provider's JSON answer as an object; anything else (an HTML error page, a
    list) as an empty one, so callers report the status rather than a parse error."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
