"""What a provider is asked: the request for a queued message, the poll of a sent one, and
the backoff after a transient refusal. Shared by the single and the batch send jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging.agents import endpoint_of
from caretime.messaging.models import Message, TrackedMessage
from caretime.messaging.providers.base import (
    OutboundRequest,
    PollRequest,
    Provider,
    TenantEndpoint,
    needs_tenant_endpoint,
)
from caretime.tenancy.numbers import sending_number

POLL_JOB = "messaging.poll"
# Waiting for the rate limiter longer than this frees the worker: a new job takes the slot.
MAX_INLINE_WAIT = 1.0


def retry_delay(attempts: int) -> timedelta:
    """Backoff after a transient provider error: 5 s, 10 s, 20 s... capped at 10 minutes."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 600))


def poll_request_for(message: Message, now: datetime) -> PollRequest:
    """What a provider is asked about a message it accepted."""
    assert message.provider_id is not None
    assert message.sent_at is not None
    return PollRequest(
        message.id,
        message.tenant_id,
        message.channel,
        message.to_phone,
        message.status,
        message.provider_id,
        message.idempotency_key,
        message.sent_at,
        now,
        message.context,
    )


async def sender_for(session: AsyncSession, tenant_id: str, provider: Provider) -> str | None:
    """The number a tenant's messages go out from: its own, else the provider's shared one.
    Twilio has no shared number: replies are routed to the tenant owning the number."""
    return await sending_number(session, tenant_id) or provider.from_number


def request_for(
    message: TrackedMessage,
    sender: str | None,
    now: datetime,
    endpoint: TenantEndpoint | None = None,
) -> OutboundRequest:
    """What a provider is handed for one queued message, sent from `sender` (to the
    tenant's own endpoint, for a provider reached per tenant)."""
    return OutboundRequest(
        message.id,
        message.tenant_id,
        message.channel,
        message.to_phone,
        sender,
        message.body,
        message.idempotency_key,
        now,
        message.context,
        endpoint,
    )


async def tenant_endpoint(
    session: AsyncSession, provider: Provider, tenant_id: str
) -> TenantEndpoint | None:
    """The tenant's own endpoint, for a provider reached per tenant (else None)."""
    return await endpoint_of(session, tenant_id) if needs_tenant_endpoint(provider) else None
