"""Texts to caregivers about a shift they hold or were offered (not offers): taken off it,
cancelled, changed. Each carries an idempotency key derived from what it is about, so a
retried request or job never texts anyone twice."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging import OutgoingMessage, RelatedEntity, queue_messages
from caretime.shifts.models import Caregiver, Offer, Shift

NOTICE_KIND = "shifts.notice"


async def notify(
    session: AsyncSession, shift: Shift, caregiver_ids: Sequence[str], body: str, *, key: str
) -> int:
    """Text `body` to each caregiver once per `key` (e.g. `cancelled`); how many were queued."""
    if not caregiver_ids:
        return 0
    rows = await session.execute(
        select(Caregiver.id, Caregiver.phone)
        .where(Caregiver.tenant_id == shift.tenant_id, Caregiver.id.in_(caregiver_ids))
        .order_by(Caregiver.id)
    )
    outgoing = [
        OutgoingMessage(
            channel="sms",
            to=phone,
            body=body,
            idempotency_key=f"shift:{shift.id}:{key}:caregiver:{caregiver_id}",
            related=RelatedEntity(NOTICE_KIND, shift.id),
        )
        for caregiver_id, phone in rows
    ]
    await queue_messages(session, tenant_id=shift.tenant_id, outgoing=outgoing)
    return len(outgoing)


async def live_offer_holders(session: AsyncSession, shift: Shift) -> list[str]:
    """Caregivers offered the shift who never said no to it (the assignee excluded)."""
    said_no = func.sum(case((Offer.reply_intent.in_(("decline", "dropped")), 1), else_=0))
    rows = await session.scalars(
        select(Offer.caregiver_id)
        .where(Offer.tenant_id == shift.tenant_id, Offer.shift_id == shift.id)
        .group_by(Offer.caregiver_id)
        .having(said_no == 0)
        .order_by(Offer.caregiver_id)
    )
    return [cid for cid in rows if cid != shift.assigned_caregiver_id]
