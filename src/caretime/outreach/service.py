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
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.ids import new_id
from caretime.outreach import pipeline
from caretime.outreach.errors import BatchKeyReused, BatchNotFound, BatchTooLarge
from caretime.outreach.events import batch_completed
from caretime.outreach.intake import (
    Intake,
    ParsedItem,
    check_scripts,
    echo,
    item_label,
    line_labels,
    parse_item,
)
from caretime.outreach.models import OutreachBatch
from caretime.outreach.pipeline import (
    BatchPlanning,
    Describe,
    ScreenSpan,
    Span,
    off_the_loop,
    plan_and_write,
    plans_in_chunks,
    spans,
)
from caretime.outreach.repository import BatchRepository, CallRepository
from caretime.outreach.schemas import POLICY_OPTIONS, BatchOptions
from caretime.outreach.screening import duplicate_of, live_calls, reader_beside, screening
from caretime.outreach.series_batch import (
    answer_items,
    preview_all,
    recurring_positions,
    set_apart,
    start_all,
)
from caretime.outreach.writing import NewCall, minute_ledger
from caretime.policy import CapacityLedger, Outcome, Planner, Rejected
from caretime.policy.planner import cyclic_gc_paused
from caretime.tenancy.policy import CallingPolicy
from caretime.together import both

# Items one batch may hold: a larger one is refused whole, before anything is planned.
MAX_BATCH_ITEMS = 100_000


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
        name: value for name in POLICY_OPTIONS if (value := getattr(options, name)) is not None
    }
    return calling.model_copy(update=overrides) if overrides else calling


async def schedule_batch(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    request: BatchRequest,
    *,
    now: datetime,
) -> BatchResult:
    # Like planning, the rest of a batch (parsing, columns, answers: several objects per
    # item, no reference cycles) gives the cycle collector nothing to find but its passes.
    with cyclic_gc_paused():
        return await _schedule_batch(session, tenant_id, calling, request, now=now)


async def _schedule_batch(
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
    may_screen_ahead = batch_id is not None and len(request.items) > pipeline.FIRST_CHUNK
    async with reader_beside(session, wanted=may_screen_ahead) as reader:
        items, ledger = await _parsed_with_ledger(session, tenant_id, calling, request, now=now)
        first = _screened_first(calling, items) if batch_id is not None else None
        known: set[str] = set()  # the contact ids the screening finds, chunk after chunk
        screen_later = await screening(
            session, tenant_id, items, first=first, reader=reader, known=known
        )
        planner = Planner(calling, now=now, ledger=ledger)
        return await _plan_and_write(session, tenant_id, planner, request, items, batch_id,
                                     screen_later, now=now, known_contacts=known)  # fmt: skip


async def _parsed_with_ledger(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    request: BatchRequest,
    *,
    now: datetime,
) -> tuple[list[Intake], CapacityLedger]:
    """The items parsed, and the tenant's capacity locked and its load read: at once for a
    batch to be written, in turn for a dry run. A dry run claimed nothing, so the ledger's
    lock is its first: on SQLite that is the database's write lock (BEGIN IMMEDIATE), which
    every other writer would wait for through the parse (up to 100,000 items). A batch to be
    written has held SQLite's write lock since its claim, so the parse beside the read
    shortens it; PostgreSQL's lock is the tenant's row, held to the commit, and the parse
    adds to it only what it outlasts the read by."""
    if request.dry_run:
        items = await _parsed(request, calling)
        return items, await minute_ledger(session, tenant_id, calling, now=now)
    return await both(
        _parsed(request, calling), minute_ledger(session, tenant_id, calling, now=now)
    )


async def _parsed(request: BatchRequest, calling: CallingPolicy) -> list[Intake]:
    """The items parsed, their scripts checked (in a worker thread for a large batch)."""

    def parse() -> list[Intake]:
        allow = request.options.allow_duplicate
        parsed = [parse_item(raw, allow_duplicate=allow) for raw in request.items]
        return check_scripts(parsed, calling.scripts)

    if len(request.items) > pipeline.INLINE_ITEMS:
        return await asyncio.to_thread(parse)
    return parse()


def _screened_first(calling: CallingPolicy, items: Sequence[Intake]) -> int | None:
    """How many items to screen before the first write, when the batch's later chunks can be
    screened while the ones before are written (each planned only once it is screened): the
    first chunk's; None when every item must be screened first."""
    first, *later = spans(len(items))
    if not later or recurring_positions(items):
        return None  # one chunk; or series, planned after the whole batch
    return first.end if plans_in_chunks(calling.strategy, items) else None


async def _plan_and_write(
    session: AsyncSession,
    tenant_id: str,
    planner: Planner,
    request: BatchRequest,
    items: list[Intake],
    batch_id: str | None,
    screen_later: ScreenSpan | None,
    *,
    now: datetime,
    known_contacts: set[str],
) -> BatchResult:
    """The rest of a batch once its items are screened (all, or the first chunk's when
    `screen_later` screens each later one): plan, write, describe. `known_contacts`: the
    contact ids the screening found (ContactRepository.insert_missing)."""
    batches = BatchRepository(session, tenant_id)
    calling, ledger = planner.calling, planner.ledger
    recurring = recurring_positions(items)
    to_plan = set_apart(items, recurring) if recurring else items
    planning = BatchPlanning(to_plan, planner, request.label())
    if batch_id is None:
        return await _dry_run(request, planning, calling, items, recurring, now=now)
    describe = _describer(request, items)
    done = await plan_and_write(session, tenant_id, calling, planning, describe,
                                batch_id=batch_id, now=now, screen_later=screen_later,
                                known_contacts=known_contacts)  # fmt: skip
    new_calls, written = done.new_calls, done.written
    refused = [i for i, call in enumerate(new_calls) if call is not None and call.id not in written]
    outcomes = await _refuse_unwritten(session, tenant_id, new_calls, refused, done.outcomes)
    call_ids = [call.id if call is not None and call.id in written else None for call in new_calls]
    series_outcomes, series = await start_all(
        session, tenant_id, calling, items, recurring, ledger, batch_id=batch_id, now=now
    )
    outcomes = _merged(outcomes, series_outcomes)
    for i, found in series.items():
        call_ids[i] = found.call_id
    result = done.answers
    for i in [*refused, *recurring]:  # told otherwise since their chunk was described
        result[i] = _answer(request.items[i], outcomes[i], call_ids[i], items[i])
    answer_items(result, series)
    await batches.finish(batch_id, _summary(request, outcomes, result))
    batch = await batches.get(batch_id)
    if batch is not None and not any(call_ids):  # nothing to wait for: complete from the start
        await batch_completed(session, batch, now=now)
    return BatchResult(batch, result)


async def _dry_run(
    request: BatchRequest,
    planning: BatchPlanning,
    calling: CallingPolicy,
    items: Sequence[Intake],
    recurring: Sequence[int],
    *,
    now: datetime,
) -> BatchResult:
    """The plan, item for item, without task ids; nothing written."""
    outcomes = await off_the_loop(planning, Span(0, len(items)))
    ledger = planning.planner.ledger
    series_outcomes, series = preview_all(calling, items, recurring, ledger, now=now)
    outcomes = _merged(outcomes, series_outcomes)
    answer = _response_items(request.items, outcomes, [], items)
    answer_items(answer, series)
    return BatchResult(None, answer)


def _merged(outcomes: list[Outcome], replacing: dict[int, Outcome]) -> list[Outcome]:
    if not replacing:
        return outcomes
    return [replacing.get(i, outcome) for i, outcome in enumerate(outcomes)]


def _check_size(request: BatchRequest) -> None:
    if len(request.items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(
            f"a batch may hold at most {MAX_BATCH_ITEMS} items; this one has "
            f"{len(request.items)}: send it in parts",
            limit=MAX_BATCH_ITEMS,
            errors=[{"loc": ["body"], "msg": f"at most {MAX_BATCH_ITEMS} items"}],
        )


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


async def _refuse_unwritten(
    session: AsyncSession,
    tenant_id: str,
    new_calls: Sequence[NewCall | None],
    refused: Sequence[int],
    outcomes: list[Outcome],
) -> list[Outcome]:
    """Planned calls the database refused (at these positions) as duplicates of a live call
    (a concurrent batch wrote it after screening) become rejections naming that call."""
    calls = [call for call in (new_calls[i] for i in refused) if call is not None]
    if not calls:
        return outcomes
    live = await live_calls(session, tenant_id, [call.planned.e164 for call in calls])
    outcomes = list(outcomes)
    for i, call in zip(refused, calls, strict=True):
        purpose = call.content.purpose
        outcomes[i] = duplicate_of(live.get((call.planned.e164, purpose)), purpose)
    return outcomes


def _response_items(
    raw_items: Sequence[Any],
    outcomes: Sequence[Outcome],
    call_ids: Sequence[str | None],
    items: Sequence[Intake],
) -> list[dict[str, Any]]:
    """What the caller gets back, item for item (no task ids for a dry run)."""
    ids = call_ids or [None] * len(outcomes)
    return [_answer(*each) for each in zip(raw_items, outcomes, ids, items, strict=True)]


def _describer(request: BatchRequest, items: Sequence[Intake]) -> Describe:
    """Answers for a span of the batch, each planned call taken as written."""

    def describe(
        span: Span, outcomes: Sequence[Outcome], new_calls: Sequence[NewCall | None]
    ) -> list[dict[str, Any]]:
        ids = [None if call is None else call.id for call in new_calls]
        raw, screened = request.items[span.start : span.end], items[span.start : span.end]
        return _response_items(raw, outcomes, ids, screened)

    return describe


def _answer(raw: Any, outcome: Outcome, call_id: str | None, item: Intake) -> dict[str, Any]:
    entry = _response_item(raw, outcome, call_id)
    if isinstance(item, ParsedItem) and item.plan.purpose and entry["status"] == "scheduled":
        entry["purpose"] = item.plan.purpose
    return entry


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
