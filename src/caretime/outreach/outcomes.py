"""What an AI voice agent reports about a call (`POST /calls/{id}/outcome`): progress, how
the attempt ended and with what disposition. The report moves the attempt's voice message
through messaging like any provider's status, so retries follow the same rules; on top, a
callback request plans the call again from `callback_at` inside the windows, and an opt-out
is recorded for the number."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.errors import InvalidInput
from caretime.events import emit
from caretime.messaging.consent import ConsentSource, set_opt_out
from caretime.messaging.models import Message
from caretime.messaging.tracking import record_event
from caretime.observability import log_event
from caretime.outreach.errors import CallNotFound, CallNotInProgress
from caretime.outreach.events import call_changed
from caretime.outreach.execution import replan
from caretime.outreach.models import PENDING, STARTED, Call, CallAttempt
from caretime.outreach.repository import AttemptRepository, CallRepository
from caretime.outreach.schemas import OutcomeIn
from caretime.tenancy.policy import CallingPolicy

log = logging.getLogger("caretime.outreach")
# The agent's statuses as messaging's voice statuses (a voicemail is an unanswered call).
MESSAGE_STATUS = {
    "in_progress": "in_progress",
    "completed": "completed",
    "no_answer": "no_answer",
    "busy": "busy",
    "voicemail": "voicemail",
    "failed": "failed",
}


async def report_outcome(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    call_id: str,
    report: OutcomeIn,
    *,
    now: datetime,
) -> Call:
    call = await CallRepository(session, tenant_id).get_for_update(call_id)
    if call is None:
        raise CallNotFound(f"no call {call_id!r}")
    attempt = await _current_attempt(session, call)
    if call.status not in STARTED or attempt is None or attempt.ended_at is not None:
        if attempt is not None and _repeats(attempt, report):
            return call  # the agent retried a report that was applied: nothing new
        raise CallNotInProgress(
            f"call {call.id} is {call.status}: there is no attempt in progress to report on"
        )
    _check_callback(report, calling, now)
    attempt.disposition = report.disposition or attempt.disposition
    attempt.summary = report.summary or attempt.summary
    await _apply(session, call, attempt, calling, report, now=now)
    await _emit(session, call, attempt, report, now=now)
    return call


async def _apply(
    session: AsyncSession,
    call: Call,
    attempt: CallAttempt,
    calling: CallingPolicy,
    report: OutcomeIn,
    *,
    now: datetime,
) -> None:
    if report.disposition == "opted_out":
        await _record_opt_out(session, call, attempt, now=now)
    if report.status != "in_progress" and report.callback_at is not None:
        await _plan_callback(session, call, attempt, calling, report.callback_at, now=now)
    message = await session.get(Message, attempt.message_id or "")
    if message is not None:
        await record_event(
            session, message, source="agent", status=MESSAGE_STATUS[report.status],
            provider_status=report.status, raw=_raw(report), now=now,
        )  # fmt: skip
    if call.status == "completed" and report.disposition is not None:
        call.outcome = report.disposition
    await session.flush()


async def _plan_callback(
    session: AsyncSession,
    call: Call,
    attempt: CallAttempt,
    calling: CallingPolicy,
    callback_at: datetime,
    *,
    now: datetime,
) -> None:
    """The patient asked to be called back: the attempt ends here and the call goes back on
    the schedule at the first allowed moment from `callback_at` (a request for 20:00 when the
    window closes at 17:00 becomes the next morning). A callback is not a failed attempt, so
    it is allowed even when the attempts are spent."""
    attempt.status, attempt.ended_at = "completed", now
    attempt.history = [*attempt.history, {"status": "completed", "at": isoformat_z(now)}]
    call.outcome = "callback_requested"
    call.max_attempts = max(call.max_attempts, call.attempts + 1)
    if not await replan(session, call, calling, after=max(callback_at, now), now=now):
        call.status, call.outcome = "expired", "callback requested, but no allowed time is left"
        await call_changed(session, call, now=now)
    log_event(log, "call_callback_planned", call_id=call.id, status=call.status)


async def _record_opt_out(
    session: AsyncSession, call: Call, attempt: CallAttempt, *, now: datetime
) -> None:
    source = ConsentSource("agent", keyword="", related_id=call.id)
    await set_opt_out(
        session, call.tenant_id, call.phone_e164, ("voice",), opted_out=True, now=now,
        source=source,
    )  # fmt: skip


def _check_callback(report: OutcomeIn, calling: CallingPolicy, now: datetime) -> None:
    if report.callback_at is None:
        return
    if report.callback_at > now + timedelta(days=calling.horizon_days):
        raise InvalidInput(
            f"callback_at {isoformat_z(report.callback_at)} is beyond the "
            f"{calling.horizon_days}-day planning horizon"
        )


async def _current_attempt(session: AsyncSession, call: Call) -> CallAttempt | None:
    attempts = await AttemptRepository(session, call.tenant_id).for_call(call.id)
    return next((a for a in attempts if a.number == call.attempts), None)


def _repeats(attempt: CallAttempt, report: OutcomeIn) -> bool:
    return (
        attempt.status in (report.status, MESSAGE_STATUS[report.status])
        and attempt.disposition == report.disposition
    )


def _raw(report: OutcomeIn) -> dict[str, object]:
    # The summary is PHI-adjacent free text: stored on the attempt only, not in the event log.
    return {"status": report.status, "disposition": report.disposition}


async def _emit(
    session: AsyncSession, call: Call, attempt: CallAttempt, report: OutcomeIn, *, now: datetime
) -> None:
    # Final statuses are told by the listener that moved the call (outreach.events).
    if call.status != PENDING:
        return
    kind = "call.callback_scheduled" if report.callback_at else "call.retry_scheduled"
    data = {
        "status": call.status, "attempt": attempt.number, "agent_status": report.status,
        "disposition": report.disposition, "outcome": call.outcome,
        "scheduled": isoformat_z(call.scheduled_at) if call.status == PENDING else None,
    }  # fmt: skip
    await emit(
        session, tenant_id=call.tenant_id, type=kind, subject=("call", call.id), data=data, now=now
    )
