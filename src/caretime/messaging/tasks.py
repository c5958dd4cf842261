"""Dispatch jobs: `messaging.send` hands a message to its provider, `messaging.poll` asks the
provider (or steps the simulator) for news. Both re-read the message and do nothing if the
world moved on, so running twice is harmless. A send over the network goes in committed
steps (`messaging/handover.py`), as a batch does."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from caretime.dispatch import JobContext, RetryLater, enqueue, job_handler
from caretime.messaging.consent import needs_consent, opted_out_numbers
from caretime.messaging.handover import hand_over_in_steps
from caretime.messaging.models import Message
from caretime.messaging.outbound import SEND_JOB
from caretime.messaging.providers import providers_of
from caretime.messaging.providers.base import (
    PermanentProviderError,
    Provider,
    StatusReport,
    TransientProviderError,
)
from caretime.messaging.repository import MessageRepository
from caretime.messaging.requests import (
    MAX_INLINE_WAIT,
    POLL_JOB,
    poll_request_for,
    request_for,
    retry_delay,
    sender_for,
    tenant_endpoint,
)
from caretime.messaging.statuses import FAILED, QUEUED, SUPPRESSED, is_final
from caretime.messaging.tracking import change_status, record_event


async def _load(ctx: JobContext, payload: dict[str, Any]) -> Message | None:
    assert ctx.job.tenant_id is not None
    return await MessageRepository(ctx.session, ctx.job.tenant_id).get(payload["message_id"])


@job_handler(SEND_JOB)
async def send(ctx: JobContext, payload: dict[str, Any]) -> None:
    if not providers_of(ctx.runtime).all_in_database():
        await _send_in_steps(ctx, payload)
        return
    message = await _load(ctx, payload)
    if message is None or message.status != QUEUED or message.provider_id is not None:
        return
    if needs_consent(message.related_kind) and await opted_out_numbers(
        ctx.session, message.tenant_id, {(message.to_phone, message.channel)}
    ):
        message.suppression_reason = f"{message.channel} opted out by the recipient"
        await change_status(ctx.session, message, SUPPRESSED, now=ctx.now())
        return
    providers = providers_of(ctx.runtime)
    provider = providers.for_channel(message.channel)
    if not payload.get("paced"):
        wait = providers.bucket(provider.name).reserve()
        if wait > MAX_INLINE_WAIT:
            await _send_later(ctx, message, wait)
            return
        await asyncio.sleep(wait)
    await _hand_over(ctx, message, provider)


async def _send_in_steps(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Marked in flight, sent and recorded in committed steps; a transient refusal retries
    this job, a slot further than a moment away goes to a paced job at that slot."""
    attempts = ctx.job.attempts
    result = await hand_over_in_steps(
        ctx,
        [payload["message_id"]],
        attempt=attempts,
        last=attempts >= ctx.job.max_attempts,
        paced=bool(payload.get("paced")),
    )
    for run_at in result.later:
        await _paced_send(ctx, payload["message_id"], run_at)
    retry = result.retry
    if retry.ids:
        raise RetryLater(retry.reason, delay=retry.hint or retry_delay(attempts))


async def _send_later(ctx: JobContext, message: Message, wait: float) -> None:
    await _paced_send(ctx, message.id, ctx.now() + timedelta(seconds=wait))


async def _paced_send(ctx: JobContext, message_id: str, run_at: datetime) -> None:
    assert ctx.job.tenant_id is not None
    await enqueue(
        ctx.session,
        SEND_JOB,
        {"message_id": message_id, "paced": True},
        run_at=run_at,
        tenant_id=ctx.job.tenant_id,
    )


async def _hand_over(ctx: JobContext, message: Message, provider: Provider) -> None:
    now = ctx.now()
    endpoint = await tenant_endpoint(ctx.session, provider, message.tenant_id)
    sender = await sender_for(ctx.session, message.tenant_id, provider)
    request = request_for(message, sender, now, endpoint)
    try:
        receipt = await provider.send(request)
    except TransientProviderError as exc:
        await _transient(ctx, message, provider.name, exc)
        return
    except PermanentProviderError as exc:
        await _fail(ctx, message, provider.name, exc.reason)
        return
    # A status callback may have come while we waited (it finds the message by our id in
    # its URL): read the status it left, under lock, so the receipt never moves it back.
    await ctx.session.refresh(message, ["status"], with_for_update={"key_share": True})
    message.provider, message.provider_id = provider.name, receipt.provider_id
    message.from_phone, message.sent_at = request.from_, now
    await _apply(ctx, message, provider.name, receipt.report)


async def _transient(
    ctx: JobContext, message: Message, provider: str, exc: TransientProviderError
) -> None:
    if ctx.job.attempts >= ctx.job.max_attempts:
        await _fail(
            ctx, message, provider, f"gave up after {ctx.job.attempts} attempts: {exc.reason}"
        )
        return
    raise RetryLater(exc.reason, delay=exc.retry_after or retry_delay(ctx.job.attempts))


async def _fail(ctx: JobContext, message: Message, provider: str, reason: str) -> None:
    await record_event(
        ctx.session,
        message,
        source=provider,
        status=FAILED,
        provider_status=None,
        raw={"error": reason},
        now=ctx.now(),
        error=reason,
    )


async def _apply(ctx: JobContext, message: Message, provider: str, report: StatusReport) -> None:
    if report.status is not None:
        await record_event(
            ctx.session,
            message,
            source=provider,
            status=report.status,
            provider_status=report.provider_status,
            raw=report.raw,
            now=ctx.now(),
        )
    if report.poll_at is not None and not is_final(message.channel, message.status):
        await enqueue(
            ctx.session,
            POLL_JOB,
            {"message_id": message.id},
            run_at=report.poll_at,
            tenant_id=message.tenant_id,
        )


@job_handler(POLL_JOB)
async def poll(ctx: JobContext, payload: dict[str, Any]) -> None:
    message = await _load(ctx, payload)
    if message is None or message.provider is None or message.provider_id is None:
        return
    if is_final(message.channel, message.status) or message.sent_at is None:
        return
    provider = providers_of(ctx.runtime).named(message.provider)
    request = poll_request_for(message, ctx.now())
    try:
        report = await provider.poll(request)
    except TransientProviderError as exc:
        raise RetryLater(
            exc.reason, delay=exc.retry_after or retry_delay(ctx.job.attempts)
        ) from exc
    except PermanentProviderError as exc:
        await _fail(ctx, message, provider.name, exc.reason)
        return
    await _apply(ctx, message, provider.name, report)
