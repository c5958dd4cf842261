"""The audit trail of one shift: offers, message statuses, replies, assignment, in order.

Message statuses are messaging's own records (the applied provider events of each offer's
message), read here rather than copied: one source of truth, and nothing for a hand-over of
thousands of messages to write on the shift's side.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts.models import Offer, ShiftEvent
from caretime.shifts.repository import OfferRepository, ShiftEventRepository
from caretime.shifts.schemas import Timeline, TimelineEntry
from caretime.shifts.service import require_shift

# At one instant an offer comes first, then its message's statuses, then what they caused
# (replies, the assignment); each kind keeps the order in which it was recorded.
_OFFER, _MESSAGE_STATUS, _SHIFT_EVENT = range(3)


async def shift_timeline(session: AsyncSession, tenant_id: str, shift_id: str) -> Timeline:
    shift = await require_shift(session, tenant_id, shift_id)
    offers = OfferRepository(session, tenant_id)
    events = ShiftEventRepository(session, tenant_id)
    offer_rows = (await session.execute(offers.with_message_status(shift_id))).all()
    status_rows = await offers.message_statuses(shift_id)
    event_rows = await events.all(events.select().where(ShiftEvent.shift_id == shift_id))
    rounds = {offer.id: (offer.round, offer.channel) for offer, _ in offer_rows}
    keyed = [
        ((offer.sent_at, _OFFER, offer.round, offer.caregiver_id, 0), _offer_entry(offer, status))
        for offer, status in offer_rows
    ]
    keyed += [
        ((row.at, _MESSAGE_STATUS, 0, "", n), _status_entry(row))
        for n, row in enumerate(status_rows)
    ]
    keyed += [((e.at, _SHIFT_EVENT, 0, "", e.id), _event_entry(e, rounds)) for e in event_rows]
    keyed.sort(key=lambda item: item[0])
    return Timeline(shift_id=shift.id, status=shift.status, entries=[e for _, e in keyed])


def _offer_entry(offer: Offer, message_status: str) -> TimelineEntry:
    details = {"message_status": message_status, "reply_intent": offer.reply_intent}
    if offer.generation > 1:
        details["generation"] = str(offer.generation)
    if offer.quiet_note is not None:
        details["quiet_hours"] = offer.quiet_note
    return _about_offer(offer, offer.sent_at, "offer", details)


def _status_entry(row: Row[Offer, str | None, datetime]) -> TimelineEntry:
    offer = row.Offer
    details = {"message_id": offer.message_id, "channel": offer.channel, "status": row.status}
    return _about_offer(offer, row.at, "message_status", details)


def _about_offer(
    offer: Offer, at: datetime, kind: str, details: dict[str, str | None]
) -> TimelineEntry:
    """An entry about one offer: it names the offer's caregiver, round and channel."""
    return TimelineEntry(
        at=at,
        kind=kind,
        caregiver_id=offer.caregiver_id,
        offer_id=offer.id,
        round=offer.round,
        channel=offer.channel,
        details=details,
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
