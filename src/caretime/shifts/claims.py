"""Answers to offers: the first "yes" wins through one conditional UPDATE; "no" is remembered."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.errors import NotFound
from caretime.observability import log_event
from caretime.shifts import texts
from caretime.shifts.alerts import alert, caregiver_label
from caretime.shifts.events import shift_changed
from caretime.shifts.models import Offer, Shift
from caretime.shifts.qualify import has_dropped, overlapping_assignment
from caretime.shifts.questions import conditional_yes, unclear, would_go_over
from caretime.shifts.reconfirm import keep
from caretime.shifts.release import Release, release_shift
from caretime.shifts.replies import is_conditional
from caretime.shifts.repository import OfferRepository, ShiftEventRepository
from caretime.shifts.service import cancel_pending_jobs, reload_shift, shift_policy

log = logging.getLogger("caretime.shifts")
# A claim lost to a filled shift that a drop then re-opened is tried again; a few times are
# plenty (each retry needs another drop to commit in between).
_CLAIM_TRIES = 3


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
    text: str | None = None,
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
        text=text,  # the agency's own staff: shown in the timeline, never logged
    )
    if intent == "accept" and text is not None and is_conditional(text):
        outcome = await _conditional(session, offer, text, message_id=message_id, now=now)
    elif intent == "accept":
        outcome = await _accept(session, offer, now=now)
    elif intent == "decline":
        outcome = await _decline(session, offer, now=now)
    else:
        shift = await _shift(session, offer)
        outcome = ClaimOutcome("clarify", unclear(shift, offer.caregiver_id), shift.id)
    reply.details = {**reply.details, "action": outcome.action}
    log_event(log, "shift_reply", shift_id=offer.shift_id, offer_id=offer.id, action=outcome.action)
    return outcome


async def _conditional(
    session: AsyncSession, offer: Offer, text: str, *, message_id: str | None, now: datetime
) -> ClaimOutcome:
    shift = await _shift(session, offer)
    action, reply = await conditional_yes(
        session, shift, offer, text, message_id=message_id, now=now
    )
    return ClaimOutcome(action, reply, shift.id, {"reason": "conditional yes"})


async def _accept(session: AsyncSession, offer: Offer, *, now: datetime) -> ClaimOutcome:
    _remember(offer, "accept", now)
    shift = await _shift(session, offer)
    if shift.status == "open" and await would_go_over(session, shift, offer.caregiver_id, now=now):
        reply = texts.over_hours_text()
        return ClaimOutcome("unavailable", reply, shift.id, {"reason": "over weekly hours"})
    for _ in range(_CLAIM_TRIES):
        if await claim(session, offer.tenant_id, offer.shift_id, offer.caregiver_id, now=now):
            return await _won(session, offer, now=now)
        # A drop that committed after our UPDATE looked opened the shift again: try again.
        # The answer explains the shift as this loop last saw it (it may move on meanwhile).
        shift = await reload_shift(session, offer.tenant_id, offer.shift_id)
        if shift.status != "open":
            break
    return await _explain_lost_claim(session, offer, shift, now=now)


async def _won(session: AsyncSession, offer: Offer, *, now: datetime) -> ClaimOutcome:
    shift = await reload_shift(session, offer.tenant_id, offer.shift_id)
    ShiftEventRepository(session, offer.tenant_id).record(
        shift.id, "assigned", at=now, caregiver_id=offer.caregiver_id, offer_id=offer.id
    )
    await cancel_pending_jobs(session, offer.tenant_id, shift.id)
    who = await caregiver_label(session, shift.tenant_id, offer.caregiver_id)
    filled = texts.filled_alert(shift, who)
    await alert(session, shift, "filled", filled, key=f"filled:{offer.caregiver_id}", now=now)
    await shift_changed(session, shift, "filled", now=now, offer_id=offer.id)
    return ClaimOutcome("assigned", texts.assigned_text(shift), shift.id)


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
            ~has_dropped(tenant_id, shift_id, caregiver_id),
            ~overlapping_assignment(
                tenant_id, caregiver_id, Shift.start_time, Shift.end_time, excluding=shift_id
            ),
        )
        .values(
            status="filled",
            reconfirm_by=None,
            assigned_caregiver_id=caregiver_id,
            filled_at=now,
            closed_at=now,
            updated_at=now,
        )
    )
    won: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return won


async def _explain_lost_claim(
    session: AsyncSession, offer: Offer, shift: Shift, *, now: datetime
) -> ClaimOutcome:
    if shift.status == "filled" and shift.assigned_caregiver_id == offer.caregiver_id:
        if shift.reconfirm_by is not None and await keep(
            session, shift, offer.caregiver_id, now=now
        ):
            return ClaimOutcome("confirmed", texts.kept_text(shift), shift.id)
        return ClaimOutcome("assigned", texts.already_yours_text(shift), shift.id)
    if shift.status == "filled":
        return ClaimOutcome("already_filled", texts.already_filled_text(shift), shift.id)
    reason = await _unavailable_reason(session, shift, offer.caregiver_id, now)
    return ClaimOutcome(
        "unavailable", texts.unavailable_text(shift, reason), shift.id, {"reason": reason}
    )


async def _unavailable_reason(
    session: AsyncSession, shift: Shift, caregiver_id: str, now: datetime
) -> str:
    if shift.status == "cancelled":
        return "it was cancelled"
    if shift.status == "expired" or shift.start_time <= now:
        return "it has started"
    if await session.scalar(select(has_dropped(shift.tenant_id, shift.id, caregiver_id))):
        return "you were released from it"
    return "you already have a shift at that time"


async def _decline(session: AsyncSession, offer: Offer, *, now: datetime) -> ClaimOutcome:
    shift = await _shift(session, offer)
    if shift.status == "filled" and shift.assigned_caregiver_id == offer.caregiver_id:
        return await _drop(session, shift, offer, now=now)
    _remember(offer, "decline", now)
    return ClaimOutcome("declined", texts.declined_text(shift), shift.id)


async def _drop(
    session: AsyncSession, shift: Shift, offer: Offer, *, now: datetime
) -> ClaimOutcome:
    """The assignee says no: a call-out. The shift opens again and is re-filled per policy."""
    policy = await shift_policy(session, offer.tenant_id)
    release = Release(offer.caregiver_id, "the caregiver replied no", "caregiver")
    if not await release_shift(session, shift, release, policy=policy, now=now):
        shift = await reload_shift(session, offer.tenant_id, offer.shift_id)
        return await _explain_lost_claim(session, offer, shift, now=now)
    _remember(offer, "dropped", now)
    return ClaimOutcome("dropped", texts.dropped_text(shift), shift.id)


def _remember(offer: Offer, intent: str, now: datetime) -> None:
    offer.reply_intent = intent
    offer.replied_at = now


async def _shift(session: AsyncSession, offer: Offer) -> Shift:
    return await reload_shift(session, offer.tenant_id, offer.shift_id)
