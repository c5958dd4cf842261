"""What outreach tells the events log: a call's PHI-minimal snapshot (ids, statuses, times;
never the name or number), and `batch.completed` once every call of a batch is final."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import Documents
from caretime.clock import isoformat_z
from caretime.db import locking
from caretime.events import PreparedEvents, emit, emit_many, prepare_many
from caretime.events.models import Event
from caretime.outreach.models import FINAL, PENDING, Call, OutreachBatch
from caretime.outreach.series_jobs import occurrence_ended


def call_data(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "batch_id": call.batch_id,
        "status": call.status,
        "scheduled": isoformat_z(call.scheduled_at),
        "tz": call.tz,
        "attempts": call.attempts,
        "max_attempts": call.max_attempts,
        "outcome": call.outcome,
        "series_id": call.series_id,
    }


async def call_changed(session: AsyncSession, call: Call, *, now: datetime) -> None:
    """`call.<status>` for a call that just moved; a final status may complete its batch
    and moves its recurring series on (every final status passes through here)."""
    verb = "started" if call.status == "dispatching" else call.status
    await emit(session, tenant_id=call.tenant_id, type=f"call.{verb}", subject=("call", call.id),
               data=call_data(call), now=now)  # fmt: skip
    if call.status in FINAL and call.batch_id is not None:
        await _maybe_complete_batch(session, call.tenant_id, call.batch_id, now=now)
    if call.status in FINAL and call.series_id is not None:
        await occurrence_ended(session, call, now=now)


def scheduled_data(
    ids: Sequence[str], instants: Sequence[datetime], zones: Sequence[str],
    series_ids: Sequence[str | None], *, batch_id: str | None, max_attempts: int,
) -> Documents:  # fmt: skip
    """`call_data` of calls just written, all at once: what differs per call is its id, time,
    zone and series; the rest is what every new call of one write has."""
    texts = {at: isoformat_z(at) for at in set(instants)}  # calls of a batch share seconds
    shape = {"id": None, "batch_id": batch_id, "status": PENDING, "scheduled": None, "tz": None,
             "attempts": 0, "max_attempts": max_attempts, "outcome": None,
             "series_id": None}  # fmt: skip
    each = {"id": ids, "scheduled": [texts[at] for at in instants], "tz": zones,
            "series_id": series_ids}  # fmt: skip
    return Documents(shape, each)


async def calls_scheduled(
    session: AsyncSession, tenant_id: str, ids: Sequence[str],
    data: list[dict[str, Any]] | Documents, *, now: datetime,
) -> None:  # fmt: skip
    await emit_many(session, tenant_id=tenant_id, type="call.scheduled",
                    subjects=("call", list(ids)), data=data, now=now)  # fmt: skip


def prepared_calls_scheduled(
    split: str, tenant_id: str, ids: Sequence[str], data: Documents, *, now: datetime, actor: str
) -> PreparedEvents:
    """`calls_scheduled`'s events built ahead, without a session (`emit_prepared` records
    them): `split` is the session's `bulk_text.splitter`, `actor` the change's."""
    return prepare_many(split, tenant_id=tenant_id, type="call.scheduled",
                        subjects=("call", list(ids)), data=data, now=now, actor=actor)  # fmt: skip


async def calls_started(
    session: AsyncSession, tenant_id: str, calls: Sequence[Call], *, now: datetime
) -> None:
    """`call.started` for calls that just moved to `dispatching` (not final: nothing else
    follows), as `call_changed` says it for one."""
    await emit_many(session, tenant_id=tenant_id, type="call.started",
                    subjects=("call", [call.id for call in calls]),
                    data=[call_data(call) for call in calls], now=now)  # fmt: skip


async def _maybe_complete_batch(
    session: AsyncSession, tenant_id: str, batch_id: str, *, now: datetime
) -> None:
    """Exactly once per batch: the batch row's lock serialises the calls finishing together,
    and the event itself records that it was said."""
    batch = await session.scalar(
        locking(
            select(OutreachBatch).where(
                OutreachBatch.tenant_id == tenant_id, OutreachBatch.id == batch_id
            )
        )
    )
    if (
        batch is None
        or await _any_open(session, tenant_id, batch_id)
        or await _said(session, tenant_id, batch_id)
    ):
        return
    await batch_completed(session, batch, now=now)


async def batch_completed(session: AsyncSession, batch: OutreachBatch, *, now: datetime) -> None:
    data = {"id": batch.id, "total": batch.total, "scheduled": batch.scheduled,
            "rejected": batch.rejected}  # fmt: skip
    await emit(session, tenant_id=batch.tenant_id, type="batch.completed",
               subject=("batch", batch.id), data=data, now=now)  # fmt: skip


async def _any_open(session: AsyncSession, tenant_id: str, batch_id: str) -> bool:
    open_call = exists().where(
        Call.tenant_id == tenant_id, Call.batch_id == batch_id, Call.status.not_in(FINAL)
    )
    return bool(await session.scalar(select(open_call)))


async def _said(session: AsyncSession, tenant_id: str, batch_id: str) -> bool:
    said = exists().where(
        Event.tenant_id == tenant_id,
        Event.subject_kind == "batch",
        Event.subject_id == batch_id,
        Event.type == "batch.completed",
    )
    return bool(await session.scalar(select(said)))
