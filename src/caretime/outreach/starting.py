"""Starting the calls one claim took: each re-checked against its windows and the contact's
caps at this moment, then its attempt, its `call.started` event and its voice message,
written for all of them at once (a statement per step, not per call: at 1,000 calls a
minute a claim's cost is what a call waits for before its request leaves).

The caller locked the calls (`CallRepository.due_in_minute`) and owns the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.ids import new_id
from caretime.messaging import OutgoingMessage, RelatedEntity, send_messages
from caretime.observability import log_event
from caretime.outreach.events import call_changed, calls_started
from caretime.outreach.execution import (
    ATTEMPT_KIND,
    CAPS_LOOKBACK,
    UNSUCCESSFUL,
    agent_context,
    record_outcome,
    replan,
    spoken_script,
)
from caretime.outreach.models import Call, CallAttempt
from caretime.outreach.repository import AttemptRepository, ContactRepository
from caretime.policy import (
    ContactCaps,
    ContactWindows,
    contact_windows,
    next_moment_under_caps,
    parse_phone,
)
from caretime.tenancy.policy import CallingPolicy

log = logging.getLogger("caretime.outreach")


async def start_due(
    session: AsyncSession,
    tenant_id: str,
    calls: Sequence[Call],
    calling: CallingPolicy,
    *,
    now: datetime,
) -> list[str]:
    """Start each of these due calls that may be placed now; put the others back on the
    schedule (or end them when nothing is left). Returns the voice messages to hand over."""
    allowed = await _allowed_now(session, tenant_id, calls, calling, now=now)
    attempts = await _start_attempts(session, tenant_id, allowed, calling, now=now)
    started = {call.id for call in allowed}
    for call in calls:
        if call.id not in started:
            await _not_allowed_now(session, call, calling, now=now)
    return [attempt.message_id for attempt in attempts if attempt.message_id is not None]


async def _allowed_now(
    session: AsyncSession,
    tenant_id: str,
    calls: Sequence[Call],
    calling: CallingPolicy,
    *,
    now: datetime,
) -> list[Call]:
    """The calls inside their windows now and within their contact's caps, counting the
    calls to the same number started before them here (in contact and due order)."""
    in_window = {
        call.id: windows for call in calls if (windows := _windows_now(call, calling, now))
    }
    contacts = sorted({call.contact_id for call in calls if call.id in in_window})
    # Two claims that share numbers would both see the caps as free: lock first, in order.
    await ContactRepository(session, tenant_id).lock_all(contacts)
    previous = await AttemptRepository(session, tenant_id).started_since_for(
        contacts, now - CAPS_LOOKBACK
    )
    caps = ContactCaps(calling.max_attempts_per_day, calling.max_attempts_per_week)
    allowed: list[Call] = []
    for call in sorted(calls, key=lambda call: (call.contact_id, call.scheduled_at)):
        windows = in_window.get(call.id)
        started = previous.setdefault(call.contact_id, [])
        if windows and _under_caps(windows, started, caps, call, now):
            allowed.append(call)
            started.append(now)
    return allowed


def _under_caps(
    windows: ContactWindows, started: list[datetime], caps: ContactCaps, call: Call, now: datetime
) -> bool:
    return next_moment_under_caps(windows, started, caps, zone=call.tz, after=now) == now


def _windows_now(call: Call, calling: CallingPolicy, now: datetime) -> ContactWindows | None:
    state = parse_phone(call.phone_e164).state
    windows = contact_windows(
        tuple(call.zones), calling, start=now, end=now + timedelta(minutes=1), state=state
    )
    return windows if windows.contains(now) else None


async def _not_allowed_now(
    session: AsyncSession, call: Call, calling: CallingPolicy, *, now: datetime
) -> None:
    # Its moment passed while nothing ran (e.g. the system was down), or the contact reached
    # a cap: never call late or too often; find the next allowed moment instead.
    log_event(log, "call_not_allowed_now", call_id=call.id)
    if not await replan(session, call, calling, after=now, now=now):
        call.status, call.outcome = "expired", "no allowed time left within the horizon"
        await call_changed(session, call, now=now)


async def _start_attempts(
    session: AsyncSession,
    tenant_id: str,
    calls: Sequence[Call],
    calling: CallingPolicy,
    *,
    now: datetime,
) -> list[CallAttempt]:
    """Mark the calls started (their `call.started` events), then queue their voice messages
    (idempotent per attempt; opted-out numbers are suppressed here) and write the attempts
    that name them. The caller hands the messages to the provider."""
    if not calls:
        return []
    attempts = [_next_attempt(call, now) for call in calls]
    await calls_started(session, tenant_id, calls, now=now)
    outgoing = [
        _voice_message(call, attempt, calling, now)
        for call, attempt in zip(calls, attempts, strict=True)
    ]
    messages = await send_messages(
        session, tenant_id=tenant_id, outgoing=outgoing, enqueue_send=False
    )
    for attempt, message in zip(attempts, messages, strict=True):
        attempt.message_id = message.id
    session.add_all(attempts)
    await session.flush()
    for call, attempt, message in zip(calls, attempts, messages, strict=True):
        log_event(log, "call_attempt_started", call_id=call.id, attempt=attempt.number)
        if message.status in UNSUCCESSFUL:  # e.g. suppressed: the number opted out of calls
            await record_outcome(session, call, attempt, message, message.status, now=now)
    return attempts


def _next_attempt(call: Call, now: datetime) -> CallAttempt:
    call.attempts += 1
    call.status, call.updated_at = "dispatching", now
    return CallAttempt(
        id=new_id("att"),
        tenant_id=call.tenant_id,
        call_id=call.id,
        contact_id=call.contact_id,
        number=call.attempts,
        status="dispatching",
        history=[{"status": "dispatching", "at": isoformat_z(now)}],
        started_at=now,
    )


def _voice_message(
    call: Call, attempt: CallAttempt, calling: CallingPolicy, now: datetime
) -> OutgoingMessage:
    return OutgoingMessage(
        channel="voice",
        to=call.phone_e164,
        body=spoken_script(call, calling),
        idempotency_key=f"outreach.call:{call.id}:attempt:{attempt.number}",
        related=RelatedEntity(kind=ATTEMPT_KIND, id=attempt.id),
        context=agent_context(call, calling, attempt.number, now=now),
    )
