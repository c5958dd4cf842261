"""Offers held for quiet hours go out when they end: the `shifts.send_held` job.

It re-reads the world like every shift job: a shift no longer open, or a newer fan-out
generation, sends nothing; a caregiver who no longer qualifies (declined elsewhere, took an
overlapping shift, opted out) is skipped; one still inside quiet hours (the policy changed)
waits again. The message keys are the round's, so a repeated job texts nobody twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging import Message
from caretime.shifts import ladder as ladders
from caretime.shifts.fanout import hold_until, offer_messages, round_timings, still_running
from caretime.shifts.models import Offer
from caretime.shifts.qualify import qualifying_caregivers
from caretime.shifts.quiet import Timing
from caretime.shifts.repository import FanOutRepository
from caretime.shifts.service import require_shift, shift_policy


async def send_held(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    number: int,
    *,
    generation: int,
    now: datetime,
) -> int:
    shift = await require_shift(session, tenant_id, shift_id)
    fanout = await FanOutRepository(session, tenant_id).for_shift(shift_id)
    if fanout is None or not still_running(shift, fanout, generation, now):
        return 0
    round_ = ladders.round_number(ladders.from_document(fanout.ladder), number)
    if round_ is None:
        return 0
    waiting = await _waiting(session, tenant_id, shift_id, generation, number, now)
    policy = await shift_policy(session, tenant_id)
    qualifying = await qualifying_caregivers(session, shift, channel=round_.channel, policy=policy)
    candidates = [c for c in qualifying if c.id in waiting]
    timed = list(
        zip(candidates, round_timings(shift, round_, candidates, policy, now), strict=True)
    )
    due = [(*waiting[c.id], c) for c, t in timed if t.at is not None and not t.held(now)]
    still_held = [(waiting[c.id][0], t) for c, t in timed if t.held(now)]
    await offer_messages(session, shift, round_, generation, due)
    await _hold_again(session, tenant_id, still_held)
    later = sorted({t.at for _, t in still_held if t.at is not None})
    await hold_until(session, shift, round_, generation, later)
    return len(due)


async def _hold_again(
    session: AsyncSession, tenant_id: str, offers: list[tuple[str, Timing]]
) -> None:
    for offer_id, timing in offers:
        await session.execute(
            update(Offer)
            .where(Offer.tenant_id == tenant_id, Offer.id == offer_id)
            .values(held_until=timing.at, quiet_note=timing.note)
        )


async def _waiting(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    generation: int,
    number: int,
    now: datetime,
) -> dict[str, tuple[str, str]]:
    """caregiver id → (offer id, message id) of the round's held offers due by now whose
    message does not exist yet."""
    rows = await session.execute(
        select(Offer.caregiver_id, Offer.id, Offer.message_id)
        .outerjoin(Message, Message.id == Offer.message_id)
        .where(
            Offer.tenant_id == tenant_id,
            Offer.shift_id == shift_id,
            Offer.generation == generation,
            Offer.round == number,
            Offer.held_until <= now,
            Message.id.is_(None),
        )
    )
    # Held offers always chose their message id with the offer (fanout.send_round).
    return {cid: (offer_id, str(message_id)) for cid, offer_id, message_id in rows}
