"""Durable timers and jobs in the database: enqueue with a change, run at the right moment.

Public surface for domains:
    enqueue(session, kind, payload, run_at=..., tenant_id=..., dedupe_key=...) -> Job
    cancel(session, job_id) / cancel_by_dedupe_key(session, tenant_id, key)
    reschedule(session, job_id, run_at)
    @job_handler("domain.verb") async def handler(ctx: JobContext, payload: dict) -> None
    RetryLater(delay=..., at=...), PermanentFailure("why")
"""

from caretime.dispatch.errors import PermanentFailure, RetryLater
from caretime.dispatch.queue import cancel, cancel_by_dedupe_key, enqueue, reschedule
from caretime.dispatch.registry import JobContext, job_handler

__all__ = [
    "JobContext",
    "PermanentFailure",
    "RetryLater",
    "cancel",
    "cancel_by_dedupe_key",
    "enqueue",
    "job_handler",
    "reschedule",
]
