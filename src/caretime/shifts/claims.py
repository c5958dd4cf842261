"""Answers to offers: the first "yes" wins through one conditional UPDATE; "no" is remembered."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.errors import NotFound
from caretime.observability import log_event
from caretime.shifts import texts
from caretime.shifts.events import shift_changed
from caretime.shifts.models import Offer, Shift
from caretime.shifts.qualify import overlapping_assignment
from caretime.shifts.repository import OfferRepository, ShiftEventRepository
from caretime.shifts.service import cancel_pending_jobs, reload_shift

log = logging.getLogger("caretime.shifts")


@dataclass(frozen=True)
class ClaimOutcome:
    action: str
    reply: str
    shift_id: str
    details: dict[str, Any] = field(default_factory=dict)


async def answer_offer(
    session: AsyncSession,
    tenant_id: str,
    offer_id: str,
    intent: str,
    *,
    now: datetime,
    message_id: str | None = None,
) -> ClaimOutcome:
    offer = await OfferRepository(session, tenant_id).get(offer_id)
    if offer is None:
        raise NotFound(f"no offer {offer_id!r}")
    # The reply is recorded before what it caused (the assignment), so the trail reads in order.
    reply = ShiftEventRepository(session, tenant_id).record(
        offer.shift_id,
        "reply",
        at=now,
        caregiver_id=offer.caregiver_id,
        offer_id=offer.id,
        intent=intent,
        message_id=message_id,
    )
    if intent == "accept":
        outcome = await _accept(session, offer, now=now)
    elif intent == "decline":
        outcome = await _decline(session, offer, now=now)
    else:
        shift = await _shift(session, offer)
        outcome = ClaimOutcome("clarify", texts.clarify_text(shift), shift.id)
    reply.details = {**reply.details, "action": outcome.action}
    log_event(log, "shift_reply", shift_id=offer.shift_id, offer_id=offer.id, action=outcome.action)
    return outcome


async def _accept(session: AsyncSession, offer: Offer, *, now: datetime) -> ClaimOutcome:
    _remember(offer, "accept", now)
    if await claim(session, offer.tenant_id, offer.shift_id, offer.caregiver_id, now=now):
        shift = await reload_shift(session, offer.tenant_id, offer.shift_id)
        ShiftEventRepository(session, offer.tenant_id).record(
            shift.id, "assigned", at=now, caregiver_id=offer.caregiver_id, offer_id=offer.id
        )
        await cancel_pending_jobs(session, offer.tenant_id, shift.id)
        await shift_changed(session, shift, "filled", now=now, offer_id=offer.id)
        return ClaimOutcome("assigned", texts.assigned_text(shift), shift.id)
    return await _explain_lost_claim(session, offer, now=now)


async def claim(
    session: AsyncSession, tenant_id: str, shift_id: str, caregiver_id: str, *, now: datetime
) -> bool:
    """THE claim: one conditional UPDATE. Under any concurrency at most one caller sees a row
    changed; the others find the shift no longer open. No lock is held beyond it."""
    result = await session.execute(
        update(Shift)
        .where(
            Shift.tenant_id == tenant_id,
            Shift.id == shift_id,
            Shift.status == "open",
            Shift.start_time > now,
            ~overlapping_assignment(
                tenant_id, caregiver_id, Shift.start_time, Shift.end_time, excluding=shift_id
            ),
        )
        .values(
            status="filled",
            assigned_caregiver_id=caregiver_id,
            filled_at=now,
            closed_at=now,
            updated_at=now,
        )
    )
    won: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return won


async def _explain_lost_claim(
    session: AsyncSession, offer: Offer, *, now: datetime
) -> ClaimOutcome:
    shift = await reload_shift(session, offer.tenant_id, offer.shift_id)
    if shift.status == "filled" and shift.assigned_caregiver_id == offer.caregiver_id:
        return ClaimOutcome("assigned", texts.already_yours_text(shift), shift.id)
    if shift.status == "filled":
        return ClaimOutcome("already_filled", texts.already_filled_text(shift), shift.id)
    reason = _unavailable_reason(shift, now)
    return ClaimOutcome(
        "unavailable", texts.unavailable_text(shift, reason), shift.id, {"reason": reason}
    )


def _unavailable_reason(shift: Shift, now: datetime) -> str:
    if shift.status == "cancelled":
        return "it was cancelled"
    if shift.status == "expired" or shift.start_time <= now:
        return "it has started"
    return "you already have a shift at that time"


async def _decline(session: AsyncSession, offer: Offer, *, now: datetime) -> ClaimOutcome:
    shift = await _shift(session, offer)
    if shift.assigned_caregiver_id == offer.caregiver_id:
        return ClaimOutcome(
            "clarify", texts.already_yours_text(shift), shift.id, {"reason": "already assigned"}
        )
    _remember(offer, "decline", now)
    return ClaimOutcome("declined", texts.declined_text(shift), shift.id)


def _remember(offer: Offer, intent: str, now: datetime) -> None:
    offer.reply_intent = intent
    offer.replied_at = now


async def _shift(session: AsyncSession, offer: Offer) -> Shift:
    return await reload_shift(session, offer.tenant_id, offer.shift_id)
