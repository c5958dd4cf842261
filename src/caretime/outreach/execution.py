"""Carrying a call out: start an attempt through messaging, record what the provider says,
and retry within the rules (next allowed moment after the delay, per-contact caps, capacity).

Call statuses: scheduled → dispatching → ringing → in_progress → completed; an unanswered,
busy or failed attempt goes back to scheduled while attempts remain, else ends `expired`
(no answer, busy, or no allowed time left) or `failed`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.messaging import Message
from caretime.observability import log_event
from caretime.outreach.content import CallContent, render, script_for
from caretime.outreach.events import call_changed
from caretime.outreach.models import PENDING, Call, CallAttempt
from caretime.outreach.repository import AttemptRepository, CallRepository
from caretime.outreach.writing import make_dispatchable, minute_ledger
from caretime.policy import (
    ContactCaps,
    PlanItem,
    Planner,
    Scheduled,
    contact_windows,
    next_moment_under_caps,
    parse_phone,
)
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import CallingPolicy
from caretime.tenancy.service import policy_of

log = logging.getLogger("caretime.outreach")
ATTEMPT_KIND = "outreach.attempt"
VOICE_SCRIPT = "Hello, this is a call from your care team."
IN_CALL = {"ringing", "in_progress"}
VOICEMAIL = "voicemail"
UNSUCCESSFUL = {"no_answer", "busy", "failed", "canceled", "suppressed", "unknown"}
# Never tried again: an opted-out number, or a call that may have been placed already (its
# request was in flight when its worker stopped and the tenant's policy holds such calls).
FINAL_OUTCOMES = {"suppressed", "unknown"}
CAPS_LOOKBACK = timedelta(days=8)


async def calling_policy(session: AsyncSession, tenant_id: str) -> CallingPolicy:
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    return policy_of(tenant).calling


def spoken_script(call: Call, calling: CallingPolicy) -> str:
    """What the provider says: the call's script or the tenant's default for its purpose,
    with the call's variables filled in."""
    content = CallContent(call.purpose, call.script, call.variables)
    script = script_for(content, calling.scripts) or VOICE_SCRIPT
    return render(script, call.variables, name=call.name)


def agent_context(
    call: Call, calling: CallingPolicy, attempt: int, *, now: datetime
) -> dict[str, Any]:
    """What a structured voice provider (an AI agent) is told beside the script: the call,
    where and when the patient is, what for, and until when it may talk (the end of the
    current legal and tenant window)."""
    state = parse_phone(call.phone_e164).state
    windows = contact_windows(
        tuple(call.zones), calling, start=now, end=now + timedelta(days=1), state=state
    )
    until = windows.allowed_until(now)
    return {
        "call_id": call.id,
        "attempt": attempt,
        "tz": call.tz,
        "local_time": now.astimezone(ZoneInfo(call.tz)).isoformat(timespec="seconds"),
        "purpose": call.purpose or None,
        "variables": call.variables or {},
        "allowed_until": None if until is None else isoformat_z(until),
        "outcome_path": f"/calls/{call.id}/outcome",
        "on_machine": on_machine(calling),
    }


def on_machine(calling: CallingPolicy) -> dict[str, Any]:
    """What the provider does when a machine answers: the tenant's voicemail policy and, to
    leave, its PHI-free message (no variables: anyone may play the mailbox back)."""
    message = None
    if calling.voicemail == "leave_message":
        message = calling.voicemail_message.replace(
            "{callback_number}", calling.callback_number or ""
        )
    return {"action": calling.voicemail, "message": message}


async def on_attempt_status(session: AsyncSession, message: Message, status: str) -> None:
    """Messaging's status event for an attempt: move the call along, retry, or finish."""
    attempt = await AttemptRepository(session, message.tenant_id).get(message.related_id or "")
    if attempt is None:
        return
    call = await CallRepository(session, message.tenant_id).get_for_update(attempt.call_id)
    if call is None or call.attempts != attempt.number or call.status not in (
        "dispatching", *IN_CALL):  # fmt: skip
        return  # an older attempt, or the call already ended
    await record_outcome(session, call, attempt, message, status, now=message.status_changed_at)


async def record_outcome(
    session: AsyncSession,
    call: Call,
    attempt: CallAttempt,
    message: Message,
    status: str,
    *,
    now: datetime,
) -> None:
    attempt.status = status
    attempt.history = [*attempt.history, {"status": status, "at": isoformat_z(now)}]
    call.updated_at = now
    if status in IN_CALL:
        call.status = status
    elif status == "completed":
        call.status = call.outcome = "completed"
        attempt.ended_at = now
        await call_changed(session, call, now=now)
    elif status == VOICEMAIL:
        attempt.ended_at = now
        await _after_voicemail(session, call, message, now=now)
    elif status in UNSUCCESSFUL:
        attempt.ended_at = now
        call.outcome = (
            status if status != "suppressed" else f"suppressed: {message.suppression_reason}"
        )
        await _after_unsuccessful(session, call, status, now=now)
    await session.flush()


async def _after_voicemail(
    session: AsyncSession, call: Call, message: Message, *, now: datetime
) -> None:
    """A machine answered. As the call was placed (its message's context says what the
    provider did), the call ends without a retry (hang_up), ends with a message left
    (leave_message), or is retried like an unanswered attempt (retry)."""
    action = ((message.context or {}).get("on_machine") or {}).get("action", "retry")
    if action in ("leave_message", "hang_up"):
        call.status, call.outcome = (
            ("completed", "voicemail: message left")
            if action == "leave_message"
            else ("no_answer", "voicemail: hung up")
        )
        await call_changed(session, call, now=now)
    else:
        call.outcome = "voicemail"
        await _after_unsuccessful(session, call, "no_answer", now=now)
    log_event(log, "call_reached_voicemail", call_id=call.id, action=action)


async def _after_unsuccessful(
    session: AsyncSession, call: Call, status: str, *, now: datetime
) -> None:
    if status in FINAL_OUTCOMES or call.attempts >= call.max_attempts:
        call.status = "failed" if status in ("failed", *FINAL_OUTCOMES) else "expired"
        log_event(log, "call_finished", call_id=call.id, status=call.status)
        await call_changed(session, call, now=now)
        return
    calling = await calling_policy(session, call.tenant_id)
    after = now + timedelta(seconds=call.retry_delay_seconds)
    if not await replan(session, call, calling, after=after, now=now):
        call.status = "expired"
        await call_changed(session, call, now=now)


async def replan(
    session: AsyncSession, call: Call, calling: CallingPolicy, *, after: datetime, now: datetime
) -> bool:
    """Put the call back on the schedule at the first allowed, capped, free moment after
    `after`. False when nothing is left within the horizon."""
    at = await next_allowed_attempt(session, call, calling, after=after)
    if at is None:
        return False
    call.status = PENDING
    await CallRepository(session, call.tenant_id).move(call, at=at, now=now, pinned=False)
    await make_dispatchable(session, call.tenant_id, [at])
    log_event(log, "call_replanned", call_id=call.id, attempt=call.attempts + 1)
    return True


async def next_allowed_attempt(
    session: AsyncSession, call: Call, calling: CallingPolicy, *, after: datetime
) -> datetime | None:
    state = parse_phone(call.phone_e164).state
    horizon = after + timedelta(days=calling.horizon_days)
    windows = contact_windows(tuple(call.zones), calling, start=after, end=horizon, state=state)
    previous = await AttemptRepository(session, call.tenant_id).started_since(
        call.contact_id, after - CAPS_LOOKBACK
    )
    caps = ContactCaps(calling.max_attempts_per_day, calling.max_attempts_per_week)
    earliest = next_moment_under_caps(windows, previous, caps, zone=call.tz, after=after)
    if earliest is None:
        return None
    ledger = await minute_ledger(session, call.tenant_id, calling, now=earliest)
    planner = Planner(calling, now=earliest, ledger=ledger, strategy="earliest")
    tz = call.zones[0] if len(call.zones) == 1 else None
    (outcome,) = planner.plan([PlanItem(call.name, call.phone_e164, None, tz)])
    return outcome.at if isinstance(outcome, Scheduled) else None


async def due_call(
    session: AsyncSession, tenant_id: str, call_id: str, version: int
) -> Call | None:
    """The call a job is for, locked, if it still waits for exactly this job."""
    call = await CallRepository(session, tenant_id).get_for_update(call_id)
    if call is None or call.status != PENDING or call.version != version:
        return None
    return call
