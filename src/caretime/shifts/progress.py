"""Fan-out progress as the API shows it: per round, how many offers and in which state."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts import ladder as ladders
from caretime.shifts.models import FanOut, Offer, Shift
from caretime.shifts.repository import FanOutRepository, OfferRepository
from caretime.shifts.schemas import FanOutOut, RoundOut
from caretime.shifts.service import require_shift


async def fanout_state(session: AsyncSession, tenant_id: str, shift_id: str) -> FanOutOut:
    shift = await require_shift(session, tenant_id, shift_id)
    fanout = await FanOutRepository(session, tenant_id).for_shift(shift_id)
    assert fanout is not None, "fanout_state is only asked about started fan-outs"
    return await _state(session, shift, fanout)


async def maybe_fanout_state(session: AsyncSession, shift: Shift) -> FanOutOut | None:
    fanout = await FanOutRepository(session, shift.tenant_id).for_shift(shift.id)
    return None if fanout is None else await _state(session, shift, fanout)


async def _state(session: AsyncSession, shift: Shift, fanout: FanOut) -> FanOutOut:
    by_round: dict[int, dict[str, int]] = defaultdict(dict)
    offers = OfferRepository(session, shift.tenant_id)
    for round_number, status, count in await offers.counts(shift.id, fanout.generation):
        by_round[round_number][status] = count
    contacted, declined = await _caregiver_counts(session, shift)
    ladder = ladders.from_document(fanout.ladder)
    rounds = [_round(shift, fanout, r, by_round.get(r.number, {})) for r in ladder]
    upcoming = [r.due_at for r in rounds if r.state == "scheduled"]
    return FanOutOut(
        shift_id=shift.id,
        shift_status=shift.status,
        started_at=fanout.started_at,
        generation=fanout.generation,
        current_round=fanout.current_round,
        next_round_at=min(upcoming, default=None),
        offers=sum(r.offers for r in rounds),
        caregivers_contacted=contacted,
        declined=declined,
        rounds=rounds,
    )


def _round(
    shift: Shift, fanout: FanOut, round_: ladders.Round, statuses: dict[str, int]
) -> RoundOut:
    due = ladders.due_at(fanout.started_at, round_)
    if fanout.current_round == 0:
        state = "stopped"  # dropped: the re-fill is a new generation, started separately
    elif round_.number <= fanout.current_round:
        state = "sent"
    elif shift.status == "open" and due < shift.start_time:
        state = "scheduled"
    else:
        state = "skipped"
    return RoundOut(
        round=round_.number,
        channel=round_.channel,
        due_at=due,
        state=state,
        offers=sum(statuses.values()),
        by_message_status=statuses,
    )


async def _caregiver_counts(session: AsyncSession, shift: Shift) -> tuple[int, int]:
    scoped = (Offer.tenant_id == shift.tenant_id, Offer.shift_id == shift.id)
    contacted = await session.scalar(
        select(func.count(distinct(Offer.caregiver_id))).where(*scoped)
    )
    declined = await session.scalar(
        select(func.count(distinct(Offer.caregiver_id))).where(
            *scoped, Offer.reply_intent == "decline"
        )
    )
    return contacted or 0, declined or 0
