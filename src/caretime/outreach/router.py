"""HTTP endpoints for outreach: POST /schedule, /outreach/batches and /calls. Thin: parse,
call the service, shape the answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.deps import ClockDep, SessionDep
from caretime.disconnect import while_connected
from caretime.errors import InvalidInput
from caretime.events.router import Cursor, EventPage, subject_events
from caretime.events.router import Limit as EventLimit
from caretime.openapi import json_body, problems
from caretime.outreach import calls as call_service
from caretime.outreach import outcomes, series_actions, service
from caretime.outreach.errors import (
    BatchKeyReused,
    BatchNotFound,
    CallAlreadyStarted,
    CallNotFound,
    CallNotInProgress,
    DuplicateCall,
    NotSchedulable,
    OptedOut,
    OutsideCallingWindow,
)
from caretime.outreach.intake import CsvRows, csv_header_problem, csv_rows
from caretime.outreach.models import Call, CallAttempt, OutreachBatch
from caretime.outreach.repository import AttemptView, CallView
from caretime.outreach.schemas import (
    AttemptOut,
    BatchDoc,
    BatchIn,
    BatchOptions,
    BatchOut,
    BatchPlan,
    CallIn,
    CallOut,
    CallPage,
    CallPatch,
    CallStatus,
    OutcomeIn,
    RejectedItemOut,
    ScheduledItemOut,
    ScheduleItem,
    SeriesOut,
    WaitingItemOut,
    retry_delay_of,
)
from caretime.outreach.series_router import series_out
from caretime.runtime import Runtime
from caretime.storable import PathText, QueryText
from caretime.tenancy.auth import PolicyDep, TenantDep
from caretime.tenancy.policy import CallingPolicy

router = APIRouter(tags=["outreach"])
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200,
           description="Send the same key again to get the first result back, nothing new."),
]  # fmt: skip
DryRun = Annotated[bool, Query(description="Plan only: create no calls.")]


@router.post(
    "/schedule",
    responses=problems(BatchKeyReused),
    response_model=list[ScheduledItemOut | WaitingItemOut | RejectedItemOut],
    summary="Schedule a batch of patient calls",
    # Read item by item (a malformed item is one rejection), documented as what it accepts.
    openapi_extra={"requestBody": json_body(list[ScheduleItem], "ScheduleBody")},
)
async def schedule(
    raw: Request,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    items: Annotated[list[Any], Body(include_in_schema=False)],
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
) -> JSONResponse:
    """Plan and create a call per patient: each item gets a legal time (time zones inferred
    from the number, calling windows, legal limits, holidays, capacity) or is rejected with
    why, in place; one bad item never fails the batch. `dry_run=true` plans only. The same
    `Idempotency-Key` returns the first answer; with another body it is a 422."""
    request = service.BatchRequest(items, idempotency_key=idempotency_key, dry_run=dry_run)
    result = await while_connected(
        raw, service.schedule_batch(session, tenant.id, policy.calling, request, now=clock.now())
    )
    return ItemsResponse(result.items, headers=_replay_header(result))


class ItemsResponse(JSONResponse):
    """A batch's per-item answer, rendered by orjson: 10,000 items took the standard
    library's encoder a tenth of the request's CPU."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # what orjson refuses (an echoed integer beyond 64 bits)
            return super().render(content)


BATCH_BODY = json_body(
    BatchDoc,
    "BatchIn",
    **{
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
    },
)


@router.post(
    "/outreach/batches",
    responses={
        200: {"model": BatchPlan, "description": "With `dry_run=true`: the plan only"},
        **problems(BatchKeyReused, InvalidInput),
    },
    status_code=201,
    response_model=BatchOut,
    openapi_extra={"requestBody": BATCH_BODY},
)
async def create_batch(
    raw: Request,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
) -> JSONResponse:
    """A batch as JSON (`{"items": [...], "strategy"?, "max_attempts"?, "retry_delay"?}`) or
    as CSV (columns name, phone, scheduled?, tz?; options as query parameters)."""
    items, options, lines = await _batch_body(raw)
    source = "json" if lines is None else "csv"
    request = service.BatchRequest(items, options, source, idempotency_key, dry_run, lines)
    result = await while_connected(
        raw, service.schedule_batch(session, tenant.id, policy.calling, request, now=clock.now())
    )
    if result.batch is None:  # a dry run: the plan only
        plan = {"items": result.items, "next_cursor": None}
        return JSONResponse(plan, headers=_replay_header(result))
    body = _batch_out(result.batch).model_dump(mode="json")
    return JSONResponse(body, status_code=201, headers=_replay_header(result))


@router.get("/outreach/batches/{batch_id}", responses=problems(BatchNotFound))
async def get_batch(batch_id: PathText, tenant: TenantDep, session: SessionDep) -> BatchOut:
    """One batch: its options, counts, rejections by reason, and its calls by status now."""
    batch, counts = await service.get_batch(session, tenant.id, batch_id)
    return _batch_out(batch, counts)


@router.post(
    "/calls",
    responses={
        202: {
            "model": SeriesOut,
            "description": "With `recurrence`, when the first occurrence is beyond the "
            "planning horizon: the series, which plans it when it comes inside",
        },
        **problems(OutsideCallingWindow, NotSchedulable, OptedOut, DuplicateCall),
    },
    status_code=201,
    response_model=CallOut,
)
async def create_call(
    body: CallIn, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> CallOut | JSONResponse:
    """Schedule one call: at `scheduled` if that moment is allowed (else 422 saying why), or
    without it at the earliest allowed moment. With `recurrence` (an RRULE), a series: the
    answer is its first occurrence (with `series_id`), each next one planned inside the
    windows when the previous ends."""
    if body.recurrence is not None:
        return await _create_series(body, tenant.id, policy.calling, session, clock.now())
    call = await call_service.create_call(session, tenant.id, policy.calling, body, now=clock.now())
    return call_out(call)


async def _create_series(
    body: CallIn, tenant_id: str, calling: CallingPolicy, session: AsyncSession, now: datetime
) -> CallOut | JSONResponse:
    started = await series_actions.create_recurring_call(session, tenant_id, calling, body, now=now)
    if started.call_id is None:
        out = series_out(started.series).model_dump(mode="json")
        return JSONResponse(out, status_code=202)
    return call_out(await call_service.get_call(session, tenant_id, started.call_id))


@router.get("/calls")
async def list_calls(
    tenant: TenantDep,
    session: SessionDep,
    status: CallStatus | None = None,
    batch_id: QueryText = None,
    series_id: QueryText = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: QueryText = None,
) -> CallPage:
    """Calls filtered by status, batch and recurring series, a page at a time."""
    calls, next_cursor = await call_service.list_calls(
        session, tenant.id, status=status, batch_id=batch_id, limit=limit, cursor=cursor,
        series_id=series_id,
    )  # fmt: skip
    return CallPage(items=[call_out(call) for call in calls], next_cursor=next_cursor)


@router.get("/calls/{call_id}", responses=problems(CallNotFound))
async def get_call(call_id: PathText, tenant: TenantDep, request: Request) -> CallOut:
    """One call with its attempts and their provider status history."""
    # The reader pool's engine rather than a reader connection's dependency: the statement
    # runs on a connection borrowed for it alone (docs/benchmarks.md, "calls4").
    runtime: Runtime = request.app.state.runtime
    call, attempts = await call_service.get_call_with_attempts(
        runtime.read_engine, tenant.id, call_id
    )
    return call_out(call, attempts)


@router.patch(
    "/calls/{call_id}",
    responses=problems(CallNotFound, CallAlreadyStarted, OutsideCallingWindow, NotSchedulable),
)
async def reschedule_call(
    call_id: PathText,
    body: CallPatch,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
) -> CallOut:
    """Move a pending call to another time, re-checked against the policy (422 saying why if
    not allowed). A call already started cannot move (409)."""
    call = await call_service.reschedule(
        session, tenant.id, policy.calling, call_id, at=body.scheduled, tz=body.tz, now=clock.now()
    )
    return call_out(call)


@router.delete("/calls/{call_id}", responses=problems(CallNotFound, CallAlreadyStarted))
async def cancel_call(
    call_id: PathText, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> CallOut:
    """Cancel a pending call; its timer is withdrawn. A call already started cannot be
    cancelled (409)."""
    return call_out(await call_service.cancel(session, tenant.id, call_id, now=clock.now()))


@router.post(
    "/calls/{call_id}/dispatch",
    responses=problems(CallNotFound, CallAlreadyStarted, OutsideCallingWindow, NotSchedulable),
    status_code=202,
)
async def dispatch_call(
    call_id: PathText, tenant: TenantDep, policy: PolicyDep, session: SessionDep, clock: ClockDep
) -> CallOut:
    """Call now, if this moment is allowed for the number and the minute has room. Otherwise
    a 422 that says why and when the next allowed moment is (`next_allowed_at`)."""
    call = await call_service.dispatch_now(
        session, tenant.id, policy.calling, call_id, now=clock.now()
    )
    return call_out(call)


@router.post(
    "/calls/{call_id}/outcome",
    responses=problems(CallNotFound, CallNotInProgress, InvalidInput),
)
async def report_outcome(
    call_id: str,
    body: OutcomeIn,
    tenant: TenantDep,
    policy: PolicyDep,
    session: SessionDep,
    clock: ClockDep,
) -> CallOut:
    """A voice agent reports progress or how the current attempt ended: status, disposition,
    callback_at (planned inside the windows), summary. Repeating a report is harmless."""
    call = await outcomes.report_outcome(
        session, tenant.id, policy.calling, call_id, body, now=clock.now()
    )
    return call_out(call, await call_service.attempts_of(session, tenant.id, call_id))


def call_out(
    call: Call | CallView, attempts: Sequence[CallAttempt | AttemptView] | None = None
) -> CallOut:
    """The call as the API shows it, from its entity or a `CallView` (its attribute names)."""
    return CallOut(
        id=call.id,
        status=call.status,
        scheduled=call.scheduled_at,
        tz=call.tz,
        zones=call.zones,
        name=call.name,
        phone_e164=call.phone_e164,
        batch_id=call.batch_id,
        pinned=call.pinned,
        attempts=call.attempts,
        max_attempts=call.max_attempts,
        retry_delay=retry_delay_of(call.retry_delay_seconds),
        outcome=call.outcome,
        purpose=call.purpose or None,
        script=call.script,
        variables=call.variables,
        allow_duplicate=call.allow_duplicate,
        series_id=call.series_id,
        created_at=call.created_at,
        updated_at=call.updated_at,
        attempt_history=None if attempts is None else [
            AttemptOut.model_validate(a) for a in attempts],
    )  # fmt: skip


def _batch_out(batch: OutreachBatch, counts: dict[str, int] | None = None) -> BatchOut:
    return BatchOut(
        id=batch.id,
        source=batch.source,
        strategy=batch.strategy,
        max_attempts=batch.max_attempts,
        retry_delay=retry_delay_of(batch.retry_delay_seconds),
        total=batch.total,
        scheduled=batch.scheduled,
        rejected=batch.rejected,
        rejections=batch.rejections.get("by_reason", {}),
        rejected_items=batch.rejections.get("items", []),
        created_at=batch.created_at,
        calls_by_status=counts,
    )


async def _batch_body(raw: Request) -> tuple[list[Any], BatchOptions, list[int] | None]:
    """The items, the options, and for a CSV the line of each item."""
    content_type = raw.headers.get("content-type", "")
    if content_type.startswith(("text/csv", "multipart/form-data")):
        rows = _csv_rows(await _csv_text(raw, content_type))
        return list(rows.items), _query_options(raw), rows.lines
    try:
        body = BatchIn.model_validate_json(await raw.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return body.items, BatchOptions(**body.model_dump(exclude={"items"})), None


async def _csv_text(raw: Request, content_type: str) -> str:
    if content_type.startswith("text/csv"):
        data = await raw.body()
    else:
        upload = (await raw.form()).get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput('upload the CSV as a form field named "file"')
        data = await upload.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV must be UTF-8 text") from None


def _csv_rows(text: str) -> CsvRows:
    problem = csv_header_problem(text)
    if problem is not None:
        raise InvalidInput(problem)
    return csv_rows(text)


def _query_options(raw: Request) -> BatchOptions:
    try:
        return BatchOptions.model_validate(
            {k: v for k, v in raw.query_params.items() if k != "dry_run"}
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _replay_header(result: service.BatchResult) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if result.replayed else {}


@router.get("/calls/{call_id}/events", tags=["events"], responses=problems(CallNotFound))
async def call_events(
    call_id: str,
    tenant: TenantDep,
    session: SessionDep,
    after: Cursor = None,
    limit: EventLimit = 100,
) -> EventPage:
    """The call's audit trail: every change, who made it, oldest first."""
    await call_service.get_call(session, tenant.id, call_id)
    return await subject_events(session, tenant.id, ("call", call_id), after=after, limit=limit)
