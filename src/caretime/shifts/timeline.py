"""The audit trail of one shift: offers, message statuses, replies, assignment, in order."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts.models import Offer, ShiftEvent
from caretime.shifts.repository import OfferRepository, ShiftEventRepository
from caretime.shifts.schemas import Timeline, TimelineEntry
from caretime.shifts.service import require_shift


async def shift_timeline(session: AsyncSession, tenant_id: str, shift_id: str) -> Timeline:
    shift = await require_shift(session, tenant_id, shift_id)
    offers = OfferRepository(session, tenant_id)
    events = ShiftEventRepository(session, tenant_id)
    offer_rows = await offers.all(offers.for_shift(shift_id))
    event_rows = await events.all(events.select().where(ShiftEvent.shift_id == shift_id))
    rounds = {offer.id: (offer.round, offer.channel) for offer in offer_rows}
    # Offers precede events at the same instant (an event is always caused by an earlier
    # offer or fan-out); events keep their insertion order.
    keyed = [((o.sent_at, 0, o.round, o.caregiver_id, 0), _offer_entry(o)) for o in offer_rows]
    keyed += [((e.at, 1, 0, "", e.id), _event_entry(e, rounds)) for e in event_rows]
    keyed.sort(key=lambda item: item[0])
    return Timeline(shift_id=shift.id, status=shift.status, entries=[e for _, e in keyed])


def _offer_entry(offer: Offer) -> TimelineEntry:
    return TimelineEntry(
        at=offer.sent_at,
        kind="offer",
        caregiver_id=offer.caregiver_id,
        offer_id=offer.id,
        round=offer.round,
        channel=offer.channel,
        details={"message_status": offer.message_status, "reply_intent": offer.reply_intent},
    )


def _event_entry(event: ShiftEvent, rounds: dict[str, tuple[int, str]]) -> TimelineEntry:
    round_, channel = rounds.get(event.offer_id or "", (None, None))
    return TimelineEntry(
        at=event.at,
        kind=event.kind,
        caregiver_id=event.caregiver_id,
        offer_id=event.offer_id,
        round=round_,
        channel=channel,
        details=event.details,
    )
