"""Single-call use cases: create one, move it, cancel it, call it now, read and list.

Every change to a pending call bumps its version; a moved call gets its new minute's dispatch
job in the same transaction, and its old minute's job no longer finds it there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from caretime.clock import isoformat_z, local_moment
from caretime.errors import InvalidInput
from caretime.ids import new_id
from caretime.outreach.content import CallContent, script_problem
from caretime.outreach.errors import (
    CallAlreadyStarted,
    CallNotFound,
    DuplicateCall,
    NotSchedulable,
    OptedOut,
    OutsideCallingWindow,
)
from caretime.outreach.events import call_changed
from caretime.outreach.models import PENDING, Call, CallAttempt
from caretime.outreach.repository import (
    AttemptRepository,
    AttemptView,
    CallRepository,
    CallView,
    call_with_attempts,
)
from caretime.outreach.schemas import BatchOptions, CallIn
from caretime.outreach.screening import (
    duplicate_reason,
    e164_of,
    look_up,
    opted_out_reason,
)
from caretime.outreach.service import effective_policy
from caretime.outreach.writing import NewCall, make_dispatchable, minute_ledger, write_calls
from caretime.policy import PlanItem, Planner, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

_WINDOW_CODES = {"outside_window", "no_window"}


async def create_call(
    session: AsyncSession, tenant_id: str, calling: CallingPolicy, body: CallIn, *, now: datetime
) -> Call:
    calling = effective_policy(
        calling, BatchOptions(max_attempts=body.max_attempts, retry_delay=body.retry_delay)
    )
    content, item = await screened(session, tenant_id, calling, body)
    outcome = await _plan_one(session, tenant_id, calling, item, now=now)
    call_id = new_id("call")
    new_call = NewCall(call_id, body.name, outcome, content, body.allow_duplicate)
    written = await write_calls(session, tenant_id, calling, [new_call], batch_id=None, now=now)
    if call_id not in written:  # a concurrent request wrote its twin after our check
        await refuse_unwanted(session, tenant_id, item)
        raise DuplicateCall(duplicate_reason(None, item.purpose))
    return await get_call(session, tenant_id, call_id)


async def screened(
    session: AsyncSession, tenant_id: str, calling: CallingPolicy, body: CallIn
) -> tuple[CallContent, PlanItem]:
    """What a `POST /calls` body asks for, refused before anything is planned: a script that
    cannot be filled (422), a number opted out of calls (422) or a live duplicate (409)."""
    content = body.content()
    problem = script_problem(content, calling.scripts)
    if problem is not None:
        raise InvalidInput(problem)
    item = PlanItem(
        body.name, body.phone, body.scheduled, body.tz, content.purpose, body.allow_duplicate
    )
    await refuse_unwanted(session, tenant_id, item)
    return content, item


async def refuse_unwanted(session: AsyncSession, tenant_id: str, item: PlanItem) -> None:
    """422 when the number opted out of calls; 409 when it already has a live call for the
    item's purpose."""
    e164 = e164_of(item.phone)
    if e164 is None:
        return  # the planner says why
    found = await look_up(session, tenant_id, [e164])
    opt_out = found.opted_out.get(e164)
    if opt_out is not None:
        raise OptedOut(opted_out_reason(opt_out))
    live = None if item.allow_duplicate else found.live.get((e164, item.purpose))
    if live is not None:
        raise DuplicateCall(duplicate_reason(live, item.purpose), existing_call_id=live.id)


async def call_now_or_earliest(
    session: AsyncSession, tenant_id: str, calling: CallingPolicy, body: CallIn, *, now: datetime
) -> Call:
    """A new call placed at this very moment when the rules allow it (like dispatch_now), else
    at the earliest moment they do. Planning without a time would round up to the next whole
    minute: up to 60 s late for someone who asked for now."""
    try:
        pinned = body.model_copy(update={"scheduled": now})
        return await create_call(session, tenant_id, calling, pinned, now=now)
    except (OutsideCallingWindow, NotSchedulable):
        # Planning failed before anything was written: plan again without the pin.
        return await create_call(session, tenant_id, calling, body, now=now)


async def reschedule(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    call_id: str,
    *,
    at: datetime,
    tz: str | None,
    now: datetime,
) -> Call:
    call = await _pending_for_update(session, tenant_id, call_id)
    return await _pin(session, tenant_id, calling, call, at=at, tz=tz, now=now)


async def dispatch_now(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    call_id: str,
    *,
    now: datetime,
    viewer_zone: tzinfo = UTC,
) -> Call:
    """Call now, if this moment is allowed for the number and the minute has room; if not,
    the refusal says when the next allowed moment is, in the viewer's zone."""
    call = await _pending_for_update(session, tenant_id, call_id)
    try:
        return await _pin(session, tenant_id, calling, call, at=now, tz=None, now=now)
    except (OutsideCallingWindow, NotSchedulable) as refusal:
        item = PlanItem(call.name, call.phone_e164, None, call.tz)
        try:
            earliest = await _plan_one(session, tenant_id, calling, item, now=now, moving=call)
        except NotSchedulable:
            raise refusal from None
        raise not_now(refusal, earliest.at, viewer_zone) from None


def not_now(refusal: InvalidInput, earliest: datetime, zone: tzinfo) -> InvalidInput:
    """The refusal of a "call now", completed with the next allowed moment."""
    why = refusal.detail.partition(" is not allowed: ")[2] or refusal.detail
    when = local_moment(earliest, zone)
    return type(refusal)(
        f"calling now is not allowed: {why}. The next allowed moment is {when}",
        **refusal.extensions,
        next_allowed_at=isoformat_z(earliest),
    )


async def cancel(session: AsyncSession, tenant_id: str, call_id: str, *, now: datetime) -> Call:
    calls = CallRepository(session, tenant_id)
    call = await calls.get_for_update(call_id)
    if call is None:
        raise CallNotFound(f"no call {call_id!r}")
    if call.status == "cancelled":
        return call
    if call.status != PENDING:
        raise CallAlreadyStarted(
            f"call {call_id} is {call.status}: only a pending call can be cancelled"
        )
    # Its minute's job skips it: the job places only calls still scheduled when it claims.
    call.status, call.outcome = "cancelled", "cancelled before it started"
    call.version += 1
    call.updated_at = now
    await session.flush()
    await call_changed(session, call, now=now)
    return call


async def get_call(session: AsyncSession, tenant_id: str, call_id: str) -> Call:
    call = await CallRepository(session, tenant_id).get(call_id)
    if call is None:
        raise CallNotFound(f"no call {call_id!r}")
    return call


async def get_call_with_attempts(
    engine: AsyncEngine, tenant_id: str, call_id: str
) -> tuple[CallView, list[AttemptView]]:
    """The call and its attempts, in one statement on a connection of
    `engine`'s pool."""
    call, attempts = await call_with_attempts(engine, tenant_id, call_id)
    if call is None:
        raise CallNotFound(f"no call {call_id!r}")
    return call, attempts


async def attempts_of(session: AsyncSession, tenant_id: str, call_id: str) -> Sequence[CallAttempt]:
    return await AttemptRepository(session, tenant_id).for_call(call_id)


async def list_calls(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None,
    batch_id: str | None,
    limit: int,
    cursor: str | None,
    series_id: str | None = None,
) -> tuple[Sequence[Call], str | None]:
    calls = CallRepository(session, tenant_id)
    statement = calls.select()
    if status is not None:
        statement = statement.where(Call.status == status)
    if batch_id is not None:
        statement = statement.where(Call.batch_id == batch_id)
    if series_id is not None:
        statement = statement.where(Call.series_id == series_id)
    return await calls.page(statement, limit=limit, after=cursor)


async def _pending_for_update(session: AsyncSession, tenant_id: str, call_id: str) -> Call:
    call = await CallRepository(session, tenant_id).get_for_update(call_id)
    if call is None:
        raise CallNotFound(f"no call {call_id!r}")
    if call.status != PENDING:
        raise CallAlreadyStarted(f"call {call_id} is {call.status}: it can no longer be moved")
    return call


async def _pin(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    call: Call,
    *,
    at: datetime,
    tz: str | None,
    now: datetime,
) -> Call:
    zone = tz or (call.zones[0] if len(call.zones) == 1 else None)
    item = PlanItem(call.name, call.phone_e164, at, zone)
    outcome = await _plan_one(session, tenant_id, calling, item, now=now, moving=call)
    call.tz, call.zones = outcome.tz, list(outcome.zones)
    await CallRepository(session, tenant_id).move(call, at=outcome.at, now=now, pinned=True)
    await make_dispatchable(session, tenant_id, [outcome.at])
    return call


async def _plan_one(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    item: PlanItem,
    *,
    now: datetime,
    moving: Call | None = None,
) -> Scheduled:
    ledger = await minute_ledger(session, tenant_id, calling, now=now)
    if moving is not None and ledger.counts.get(moving.scheduled_minute, 0) > 0:
        ledger.counts[moving.scheduled_minute] -= 1  # the call's own place is free to reuse
    (outcome,) = Planner(calling, now=now, ledger=ledger).plan([item])
    if isinstance(outcome, Rejected):
        error = OutsideCallingWindow if outcome.code in _WINDOW_CODES else NotSchedulable
        raise error(outcome.error, reason=outcome.code)
    return outcome
