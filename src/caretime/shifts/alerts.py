"""Coordinator alerts: texts to the phones in policy `shifts.alerts` about what needs a
person (a call-out, a shift still open near its start, a caregiver's question...).

Alerts are messages like any other (consent, idempotency keys per shift, reason and phone)
and each appears once in the shift's timeline. The same changes are events, which outbound
webhooks carry.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import enqueue
from caretime.messaging import OutgoingMessage, RelatedEntity, queue_messages
from caretime.shifts import texts
from caretime.shifts.models import Caregiver, Shift, ShiftEvent
from caretime.shifts.repository import FanOutRepository, ShiftEventRepository
from caretime.shifts.service import UNFILLED, require_shift, shift_policy, unfilled_key
from caretime.tenancy.policy import ShiftAlertKind, ShiftPolicy

ALERT_KIND = "shifts.alert"
# "The ladder is spent": this long after its last round went out, nobody has said yes.
LADDER_SPENT_AFTER = timedelta(minutes=10)


async def alert(
    session: AsyncSession,
    shift: Shift,
    kind: ShiftAlertKind,
    text: str,
    *,
    key: str,
    now: datetime,
) -> int:
    """Text the coordinators who want `kind`, once per `key` (what the alert is about);
    returns how many phones were texted (0 if none wants it or it was sent before)."""
    policy = await shift_policy(session, shift.tenant_id)
    phones = [a.phone for a in policy.alerts if kind in a.events]
    if not phones or await _sent_before(session, shift, key):
        return 0
    outgoing = [
        OutgoingMessage(
            channel="sms",
            to=phone,
            body=text,
            idempotency_key=f"shift:{shift.id}:alert:{key}:to:{phone}",
            related=RelatedEntity(ALERT_KIND, shift.id),
        )
        for phone in phones
    ]
    queued = await queue_messages(session, tenant_id=shift.tenant_id, outgoing=outgoing)
    ShiftEventRepository(session, shift.tenant_id).record(
        shift.id,
        "alert",
        at=now,
        alert=kind,
        key=key,
        text=text,
        message_ids=[q.id for q in queued],
    )
    return len(queued)


async def _sent_before(session: AsyncSession, shift: Shift, key: str) -> bool:
    alerts = await session.scalars(
        select(ShiftEvent.details).where(
            ShiftEvent.tenant_id == shift.tenant_id,
            ShiftEvent.shift_id == shift.id,
            ShiftEvent.kind == "alert",
        )
    )
    return any(details.get("key") == key for details in alerts)


async def caregiver_label(session: AsyncSession, tenant_id: str, caregiver_id: str) -> str:
    """'Ana Diaz (c1)' for a coordinator (staff naming staff; no patient data)."""
    caregiver = await session.get(Caregiver, (tenant_id, caregiver_id))
    return f"{caregiver.name} ({caregiver_id})" if caregiver else caregiver_id


async def check_unfilled(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    *,
    generation: int,
    reason: str,
    now: datetime,
) -> bool:
    """The `shifts.unfilled` job: alert if the shift is still open in this generation."""
    shift = await require_shift(session, tenant_id, shift_id)
    fanout = await FanOutRepository(session, tenant_id).for_shift(shift_id)
    if shift.status != "open" or shift.start_time <= now or fanout is None:
        return False
    if fanout.generation != generation:
        return False
    text = texts.unfilled_alert(shift, reason)
    await alert(session, shift, "unfilled", text, key=f"unfilled:{generation}:{reason}", now=now)
    return True


async def schedule_unfilled_checks(
    session: AsyncSession,
    shift: Shift,
    *,
    last_round_at: datetime,
    generation: int,
    policy: ShiftPolicy,
) -> None:
    """Two checks per fan-out generation: a while after the last round, and some hours
    before the start (both only while the shift is open; a claim cancels them)."""
    checks = {
        "ladder": last_round_at + LADDER_SPENT_AFTER,
        "near_start": shift.start_time - policy.unfilled_alert_before,
    }
    for reason, at in checks.items():
        if at >= shift.start_time:
            continue
        await enqueue(
            session,
            UNFILLED,
            {"shift_id": shift.id, "generation": generation, "reason": reason},
            run_at=at,
            tenant_id=shift.tenant_id,
            dedupe_key=unfilled_key(shift.id, generation, reason),
        )
