"""Answers to offers: the first "yes" wins through one conditional UPDATE; "no" is remembered."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.followups import follow_up, follow_up_handler
from caretime.errors import NotFound
from caretime.firstyes import claim_first
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
from caretime.shifts.repository import ShiftEventRepository
from caretime.shifts.service import cancel_pending_jobs, reload_shift, shift_policy

log = logging.getLogger("caretime.shifts")
# A claim lost to a filled shift that a drop then re-opened is tried again; a few times are
# plenty (each retry needs another drop to commit in between).
_CLAIM_TRIES = 3
# The follow-up of a won claim (see _won).
CLAIMED = "shifts.claimed"


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
    # The offer and its shift are usually in the session already: the router's one read
    # that found the question loaded them.
    offer = await session.get(Offer, (tenant_id, offer_id))
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
    shift = await _as_read(session, offer)
    if shift.status != "open":
        # Answered from that one read, without a claim: a filled shift is the common case
        # in a burst of yeses, and a claim would wait on the winner's row lock for nothing.
        return await _explain_lost_claim(session, offer, shift, now=now)
    if await would_go_over(session, shift, offer.caregiver_id, now=now):
        reply = texts.over_hours_text()
        return ClaimOutcome("unavailable", reply, shift.id, {"reason": "over weekly hours"})
    # The reply's trail entry and the offer's answer are written before the claim: from the
    # UPDATE on, this transaction holds the shift's row lock, and every other yes waits.
    await session.flush()
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
    """The claim's transaction holds the shift's row lock until it commits, so it does only
    what must commit with the claim (the shift.filled event); the trail's assignment, the
    cancelled rounds and the coordinators' alert follow right after (caretime.dispatch
    follow-ups: once, even across a crash)."""
    shift = await reload_shift(session, offer.tenant_id, offer.shift_id)
    await shift_changed(session, shift, "filled", now=now, offer_id=offer.id)
    payload = {
        "shift_id": shift.id,
        "offer_id": offer.id,
        "caregiver_id": offer.caregiver_id,
        "at": now.isoformat(),
    }
    key = f"{CLAIMED}:{shift.id}:{offer.caregiver_id}"
    await follow_up(session, CLAIMED, payload, tenant_id=shift.tenant_id, dedupe_key=key)
    return ClaimOutcome("assigned", texts.assigned_text(shift), shift.id)


@follow_up_handler(CLAIMED)
async def after_claim(session: AsyncSession, tenant_id: str, payload: dict[str, Any]) -> None:
    """The trail's assignment, then (if the caregiver still holds the shift) no more rounds
    and the coordinators' `filled` alert."""
    at = datetime.fromisoformat(payload["at"])
    shift_id, caregiver_id = payload["shift_id"], payload["caregiver_id"]
    ShiftEventRepository(session, tenant_id).record(
        shift_id, "assigned", at=at, caregiver_id=caregiver_id, offer_id=payload["offer_id"]
    )
    shift = await reload_shift(session, tenant_id, shift_id)
    if (shift.status, shift.assigned_caregiver_id) != ("filled", caregiver_id):
        return  # released meanwhile: the release re-armed what the shift needs now
    await cancel_pending_jobs(session, tenant_id, shift_id)
    who = await caregiver_label(session, tenant_id, caregiver_id)
    filled = texts.filled_alert(shift, who)
    await alert(session, shift, "filled", filled, key=f"filled:{caregiver_id}", now=at)


async def claim(
    session: AsyncSession, tenant_id: str, shift_id: str, caregiver_id: str, *, now: datetime
) -> bool:
    """THE claim (caretime.firstyes): the shift leaves `open` for exactly one caller; the
    others find it no longer open. A caregiver released from the shift cannot take it back."""
    conditions = (
        Shift.start_time > now,
        ~has_dropped(tenant_id, shift_id, caregiver_id),
        ~overlapping_assignment(
            tenant_id, caregiver_id, Shift.start_time, Shift.end_time, excluding=shift_id
        ),
    )
    values = {
        "status": "filled",
        "reconfirm_by": None,
        "assigned_caregiver_id": caregiver_id,
        "filled_at": now,
        "closed_at": now,
        "updated_at": now,
    }
    return await claim_first(
        session,
        Shift,
        tenant_id=tenant_id,
        subject_id=shift_id,
        values=values,
        conditions=conditions,
    )


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
    # The read that found the offer is enough: a drop re-checks the assignment as it
    # releases (release_shift), and a plain no changes nothing the shift's state decides.
    shift = await _as_read(session, offer)
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
    """The offer keeps its answer and when it was first given: the same answer again (a
    repeated "no") is in the trail only, and writes (and locks) no offer row."""
    if offer.reply_intent == intent:
        return
    offer.reply_intent = intent
    offer.replied_at = now


async def _shift(session: AsyncSession, offer: Offer) -> Shift:
    return await reload_shift(session, offer.tenant_id, offer.shift_id)


async def _as_read(session: AsyncSession, offer: Offer) -> Shift:
    """The shift as this transaction read it when it found the offer (else read now)."""
    shift = await session.get(Shift, (offer.tenant_id, offer.shift_id))
    if shift is None:
        raise NotFound(f"no shift {offer.shift_id!r}")
    return shift
