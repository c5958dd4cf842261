"""Scheduling a batch: plan every item, then write contacts, calls and their jobs in bulk.

Used by POST /schedule, POST /outreach/batches and (without writes) `caretime plan`. The
caller owns the transaction. Capacity is planned under a per-tenant lock, from one query for
the existing per-minute load, so concurrent batches never overfill a minute.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.ids import new_id
from caretime.outreach.errors import BatchKeyReused, BatchNotFound, BatchTooLarge
from caretime.outreach.events import batch_completed, calls_scheduled
from caretime.outreach.intake import echo, item_label, line_labels, plan_item, plan_parsed
from caretime.outreach.models import PENDING, OutreachBatch
from caretime.outreach.repository import (
    BatchRepository,
    CallRepository,
    ContactRepository,
    lock_tenant,
)
from caretime.outreach.schemas import BatchOptions
from caretime.policy import CapacityLedger, Outcome, PlanItem, Planner, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

PLACE_CALL = "outreach.place_call"
# Items one batch may hold: a larger one is refused whole, before anything is planned.
MAX_BATCH_ITEMS = 100_000
# Batches larger than this are planned in a worker thread, so the event loop keeps
# answering other requests (/health among them) while a big batch is planned.
PLAN_INLINE_ITEMS = 1_000


@dataclass(frozen=True)
class BatchRequest:
    items: Sequence[Any]
    options: BatchOptions = field(default_factory=BatchOptions)
    source: str = "schedule"
    idempotency_key: str | None = None
    dry_run: bool = False
    # For a CSV: the line each item starts on, so that rejections name lines, not indexes.
    lines: Sequence[int] | None = None

    def label(self) -> Callable[[int], str]:
        return line_labels(self.lines) if self.lines is not None else item_label


@dataclass(frozen=True)
class BatchResult:
    batch: OutreachBatch | None
    items: list[dict[str, Any]]
    replayed: bool = False


def effective_policy(calling: CallingPolicy, options: BatchOptions) -> CallingPolicy:
    overrides = {
        name: value
        for name in BatchOptions.model_fields
        if (value := getattr(options, name)) is not None
    }
    return calling.model_copy(update=overrides) if overrides else calling


def place_call_job(tenant_id: str, call_id: str, version: int, at: datetime) -> NewJob:
    """The job that rings a call at its time. Its key names the call's version, so moving a
    call (a new version) makes any older job a no-op."""
    return NewJob(
        kind=PLACE_CALL,
        payload={"call_id": call_id, "version": version},
        run_at=at,
        tenant_id=tenant_id,
        dedupe_key=place_call_key(call_id, version),
    )


def place_call_key(call_id: str, version: int) -> str:
    return f"outreach.call:{call_id}:v{version}"


def contact_id(tenant_id: str, e164: str) -> str:
    return "con_" + hashlib.sha256(f"{tenant_id}:{e164}".encode()).hexdigest()[:32]


async def minute_ledger(
    session: AsyncSession, tenant_id: str, calling: CallingPolicy, *, now: datetime
) -> CapacityLedger:
    """Lock the tenant's capacity and read what is already booked within the horizon."""
    await lock_tenant(session, tenant_id)
    first = int(now.timestamp()) // 60
    end = int((now + timedelta(days=calling.horizon_days)).timestamp()) // 60 + 1
    load = await CallRepository(session, tenant_id).minute_load(first, end)
    return CapacityLedger.starting_with(calling.max_calls_per_minute, load)


async def schedule_batch(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    request: BatchRequest,
    *,
    now: datetime,
) -> BatchResult:
    _check_size(request)
    calling = effective_policy(calling, request.options)
    batches = BatchRepository(session, tenant_id)
    batch_id = None if request.dry_run else new_id("bat")
    if batch_id is not None:
        replay = await _claim(batches, batch_id, calling, request, now)
        if replay is not None:
            return replay
    ledger = await minute_ledger(session, tenant_id, calling, now=now)
    if len(request.items) > PLAN_INLINE_ITEMS:
        items, outcomes = await asyncio.to_thread(_plan, request, calling, ledger, now)
    else:
        items, outcomes = _plan(request, calling, ledger, now)
    if batch_id is None:
        return BatchResult(None, _response_items(request.items, outcomes, []))
    call_ids = [new_id("call") if isinstance(o, Scheduled) else None for o in outcomes]
    new_calls = [
        NewCall(call_id, item.name, outcome)
        for call_id, item, outcome in zip(call_ids, items, outcomes, strict=True)
        if call_id is not None and isinstance(item, PlanItem) and isinstance(outcome, Scheduled)
    ]
    await write_calls(session, tenant_id, calling, new_calls, batch_id=batch_id, now=now)
    result = _response_items(request.items, outcomes, call_ids)
    await batches.finish(batch_id, _summary(request, outcomes, result))
    batch = await batches.get(batch_id)
    if batch is not None and not new_calls:  # nothing to wait for: complete from the start
        await batch_completed(session, batch, now=now)
    return BatchResult(batch, result)


def _check_size(request: BatchRequest) -> None:
    if len(request.items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(
            f"a batch may hold at most {MAX_BATCH_ITEMS} items; this one has "
            f"{len(request.items)}: send it in parts",
            limit=MAX_BATCH_ITEMS,
            errors=[{"loc": ["body"], "msg": f"at most {MAX_BATCH_ITEMS} items"}],
        )


def _plan(
    request: BatchRequest, calling: CallingPolicy, ledger: CapacityLedger, now: datetime
) -> tuple[list[PlanItem | str], list[Outcome]]:
    """Parse and plan every item: pure CPU work, safe to run in a worker thread."""
    items = [plan_item(raw) for raw in request.items]
    planner = Planner(calling, now=now, ledger=ledger)
    return items, plan_parsed(planner, items, label=request.label())


async def _claim(
    batches: BatchRepository,
    batch_id: str,
    calling: CallingPolicy,
    request: BatchRequest,
    now: datetime,
) -> BatchResult | None:
    """Create the batch row first; with an Idempotency-Key already used, the earlier result."""
    digest = _request_hash(request)
    values: dict[str, Any] = {
        "id": batch_id,
        "idempotency_key": request.idempotency_key,
        "request_hash": digest,
        "source": request.source,
        "strategy": calling.strategy,
        "max_attempts": calling.max_attempts,
        "retry_delay_seconds": int(calling.retry_delay.total_seconds()),
        "total": len(request.items),
        "scheduled": 0,
        "rejected": 0,
        "rejections": {},
        "created_at": now,
    }
    if await batches.claim_key(values):
        return None
    assert request.idempotency_key is not None
    earlier = await batches.by_idempotency_key(request.idempotency_key)
    assert earlier is not None
    if earlier.request_hash != digest:
        raise BatchKeyReused("this Idempotency-Key was used for a different batch; use a new key")
    return BatchResult(earlier, earlier.result or [], replayed=True)


def _request_hash(request: BatchRequest) -> str:
    if request.idempotency_key is None:
        return ""
    body = [request.items, request.options.model_dump(mode="json"), request.source]
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class NewCall(NamedTuple):
    id: str
    name: str
    planned: Scheduled


async def write_calls(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    new_calls: Sequence[NewCall],
    *,
    batch_id: str | None,
    now: datetime,
) -> None:
    """Contacts (those not known yet), calls and their dispatch jobs: one statement each."""
    contacts = [contact_id(tenant_id, call.planned.e164) for call in new_calls]
    names = [call.name for call in new_calls]
    phones = [call.planned.e164 for call in new_calls]
    zones = [call.planned.zones for call in new_calls]
    await ContactRepository(session, tenant_id).insert_missing(
        {"id": contacts, "name": names, "phone_e164": phones, "zones": zones}, now=now
    )
    at = [call.planned.at for call in new_calls]
    await CallRepository(session, tenant_id).insert_new(
        {
            "id": [call.id for call in new_calls],
            "contact_id": contacts,
            "name": names,
            "phone_e164": phones,
            "tz": [call.planned.tz for call in new_calls],
            "zones": zones,
            "scheduled_at": at,
            "scheduled_minute": [int(instant.timestamp()) // 60 for instant in at],
            "pinned": [call.planned.pinned for call in new_calls],
        },
        _new_call_values(calling, batch_id, now),
    )
    await enqueue_many(
        session, [place_call_job(tenant_id, call.id, 1, call.planned.at) for call in new_calls]
    )
    scheduled = [_scheduled_data(call, calling, batch_id) for call in new_calls]
    await calls_scheduled(session, tenant_id, [c.id for c in new_calls], scheduled, now=now)


def _scheduled_data(call: NewCall, calling: CallingPolicy, batch_id: str | None) -> dict[str, Any]:
    return {"id": call.id, "batch_id": batch_id, "status": PENDING,
            "scheduled": _instant_z(call.planned.at), "tz": call.planned.tz, "attempts": 0,
            "max_attempts": calling.max_attempts, "outcome": None}  # fmt: skip


def _new_call_values(calling: CallingPolicy, batch_id: str | None, now: datetime) -> dict[str, Any]:
    """What every call of one write shares."""
    return {
        "batch_id": batch_id,
        "status": PENDING,
        "version": 1,
        "attempts": 0,
        "max_attempts": calling.max_attempts,
        "retry_delay_seconds": int(calling.retry_delay.total_seconds()),
        "outcome": None,
        "created_at": now,
        "updated_at": now,
    }


def _response_items(
    raw_items: Sequence[Any], outcomes: Sequence[Outcome], call_ids: Sequence[str | None]
) -> list[dict[str, Any]]:
    """What the caller gets back, item for item (no task ids for a dry run)."""
    ids = call_ids or [None] * len(outcomes)
    return [_response_item(r, o, i) for r, o, i in zip(raw_items, outcomes, ids, strict=True)]


def _response_item(raw: Any, outcome: Outcome, call_id: str | None) -> dict[str, Any]:
    if isinstance(outcome, Rejected):
        return {
            "name": echo(raw, "name"),
            "phone": echo(raw, "phone"),
            "status": "rejected",
            "error": outcome.error,
        }
    return {
        "name": echo(raw, "name"),
        "phone": echo(raw, "phone"),
        "phone_e164": outcome.e164,
        "tz": outcome.tz,
        "scheduled": _instant_z(outcome.at),
        "scheduled_task_id": call_id,
        "status": "scheduled",
    }


@functools.lru_cache(maxsize=4096)
def _instant_z(at: datetime) -> str:
    # Calls of a batch share seconds, so a 10,000-call answer has a few hundred distinct times.
    return isoformat_z(at)


def _summary(
    request: BatchRequest, outcomes: Sequence[Outcome], result: list[dict[str, Any]]
) -> dict[str, Any]:
    rejected = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Rejected)]
    return {
        "scheduled": len(outcomes) - len(rejected),
        "rejected": len(rejected),
        "rejections": {
            "by_reason": dict(Counter(o.code for _, o in rejected)),
            "items": [{**_position(request, i), **result[i]} for i, _ in rejected],
        },
        "result": result if request.idempotency_key else None,
    }


def _position(request: BatchRequest, index: int) -> dict[str, int]:
    if request.lines is None:
        return {"index": index}
    return {"index": index, "line": request.lines[index]}


async def get_batch(
    session: AsyncSession, tenant_id: str, batch_id: str
) -> tuple[OutreachBatch, dict[str, int]]:
    """A batch and how many of its calls are in each status now."""
    batch = await BatchRepository(session, tenant_id).get(batch_id)
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id!r}")
    return batch, await CallRepository(session, tenant_id).counts_by_status(batch_id)
