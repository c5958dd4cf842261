"""The send job: transient errors retry with backoff, permanent ones fail the message, and the
rate limiter paces sends without losing any."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from caretime.dispatch.worker import Dispatcher
from caretime.messaging.providers.base import PermanentProviderError, TransientProviderError
from caretime.messaging.ratelimit import TokenBucket
from caretime.messaging.tasks import retry_delay
from caretime.runtime import Runtime
from tests.messaging.support import (
    ScriptedProvider,
    default_tenant_id,
    install_provider,
    jobs_of,
    load_message,
    make_message,
)


async def test_transient_errors_retry_with_backoff(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    provider = ScriptedProvider(
        errors=[TransientProviderError("503"), TransientProviderError("503")]
    )
    install_provider(runtime, provider)
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    [job] = await jobs_of(runtime, "messaging.send")
    assert (job.status, job.run_at) == ("queued", runtime.clock.now() + timedelta(seconds=5))
    runtime.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
    await dispatcher.run_pending()
    [job] = await jobs_of(runtime, "messaging.send")
    assert job.run_at == runtime.clock.now() + timedelta(seconds=10)
    assert (await load_message(runtime, message.id)).status == "queued"
    runtime.clock.advance(timedelta(seconds=10))  # type: ignore[attr-defined]
    await dispatcher.run_pending()
    sent = await load_message(runtime, message.id)
    assert (sent.status, sent.provider_id) == ("sent", "scripted-1")
    assert len(provider.sent) == 1


async def test_provider_retry_after_is_respected(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    error = TransientProviderError("429", retry_after=timedelta(seconds=42))
    install_provider(runtime, ScriptedProvider(errors=[error]))
    await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    [job] = await jobs_of(runtime, "messaging.send")
    assert job.run_at == runtime.clock.now() + timedelta(seconds=42)


async def test_permanent_error_fails_the_message_with_the_reason(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    provider = ScriptedProvider(errors=[PermanentProviderError("twilio error 21211: invalid To")])
    install_provider(runtime, provider)
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    await dispatcher.run_pending()
    failed = await load_message(runtime, message.id)
    assert (failed.status, failed.error) == ("failed", "twilio error 21211: invalid To")
    [job] = await jobs_of(runtime, "messaging.send")
    assert job.status == "done"


async def test_transient_errors_give_up_after_the_last_attempt(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    install_provider(runtime, ScriptedProvider(errors=[TransientProviderError("down")] * 10))
    message = await make_message(runtime, tenant_id=await default_tenant_id(runtime))
    for _ in range(6):
        await dispatcher.run_pending()
        runtime.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    failed = await load_message(runtime, message.id)
    assert failed.status == "failed"
    assert failed.error == "gave up after 5 attempts: down"


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 5), (2, 10), (3, 20), (4, 40), (8, 600), (20, 600)]
)
def test_retry_delay_doubles_up_to_ten_minutes(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


def test_token_bucket_spaces_sends_at_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(10, burst=2, monotonic=lambda: now[0])
    waits = [round(bucket.reserve(), 3) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.1, 0.2]
    now[0] += 10
    assert round(bucket.reserve(), 3) == 0.0


async def test_a_saturated_limiter_moves_the_send_to_a_later_job(
    runtime: Runtime, app: Any, dispatcher: Dispatcher
) -> None:
    provider = ScriptedProvider(rate_per_second=0.1)
    install_provider(runtime, provider)
    tenant_id = await default_tenant_id(runtime)
    # At 0.1/s the bucket holds one send plus one of burst; the third must wait ~10 s.
    ids = {(await make_message(runtime, tenant_id=tenant_id, key=key)).id for key in "abc"}
    await dispatcher.run_pending()
    assert len(provider.sent) == 2
    [waiting] = ids - {r.message_id for r in provider.sent}
    assert (await load_message(runtime, waiting)).status == "queued"
    paced = [job for job in await jobs_of(runtime, "messaging.send") if job.status == "queued"]
    assert [job.payload for job in paced] == [{"message_id": waiting, "paced": True}]
    assert paced[0].run_at > runtime.clock.now()
    runtime.clock.advance(timedelta(seconds=11))  # type: ignore[attr-defined]
    await dispatcher.run_pending()
    assert {r.message_id for r in provider.sent} == ids
