"""The timer that moves a recurring series on: one job kind, run when an occurrence ends and
when a waiting occurrence comes inside the planning horizon. Written in the transaction that
caused it, so a series never stalls on a lost wake-up."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.outreach.models import Call

SERIES_NEXT = "outreach.series_next"


def series_next_job(tenant_id: str, series_id: str, *, at: datetime, reason: str) -> NewJob:
    """`reason` names what woke the series (the call that ended, or the occurrence waited
    for), so two wake-ups for one cause are one job."""
    return NewJob(
        kind=SERIES_NEXT,
        payload={"series_id": series_id},
        run_at=at,
        tenant_id=tenant_id,
        dedupe_key=f"outreach.series:{series_id}:{reason}",
    )


async def occurrence_ended(session: AsyncSession, call: Call, *, now: datetime) -> None:
    """A series' occurrence reached a final status: plan the next one (in its own job, so
    the transaction that ended the call stays as short as it was)."""
    assert call.series_id is not None
    job = series_next_job(call.tenant_id, call.series_id, at=now, reason=f"after:{call.id}")
    await enqueue_many(session, [job])
