"""Fan-out: offer an open shift to every qualifying caregiver, round after round.

Sending twice is impossible by construction, not by checking: the fan-out row is unique per
shift (a second POST, even a concurrent one, inserts nothing and only reports), an offer is
unique per (shift, caregiver, round) and only newly inserted offers are messaged, and every
message carries the idempotency key `shift:{id}:round:{n}:caregiver:{cid}`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import enqueue
from caretime.ids import new_id
from caretime.messaging import OutgoingMessage, RelatedEntity, queue_messages
from caretime.observability import log_event
from caretime.shifts import ladder as ladders
from caretime.shifts.events import shift_changed
from caretime.shifts.ladder import Round
from caretime.shifts.models import FanOut, Shift
from caretime.shifts.progress import fanout_state
from caretime.shifts.qualify import qualifying_caregivers
from caretime.shifts.repository import FanOutRepository, OfferRepository
from caretime.shifts.schemas import FanOutOut
from caretime.shifts.service import ESCALATE, ShiftNotOpen, require_shift, round_key
from caretime.shifts.texts import offer_text
from caretime.tenancy.policy import ShiftPolicy

log = logging.getLogger("caretime.shifts")
OFFER_KIND = "shifts.offer"


def message_key(shift_id: str, round_number: int, caregiver_id: str) -> str:
    return f"shift:{shift_id}:round:{round_number}:caregiver:{caregiver_id}"


async def start_fanout(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> FanOutOut:
    """Start the fan-out (round 1 now, the next round as a job), or report the one that exists."""
    shift = await require_shift(session, tenant_id, shift_id)
    if shift.status != "open" or shift.start_time <= now:
        status = shift.status if shift.status != "open" else "started"
        raise ShiftNotOpen(f"shift {shift_id!r} is {status}", shift_status=shift.status)
    ladder = ladders.rounds_of(policy.escalation)
    row = {"shift_id": shift_id, "ladder": ladders.to_document(ladder), "started_at": now}
    if await FanOutRepository(session, tenant_id).insert_once({**row, "current_round": 1}):
        sent = await send_round(session, shift, ladder[0], now=now)
        await shift_changed(session, shift, "fanout_started", now=now, offers=sent)
        await schedule_next_round(session, shift, ladder, after=1, started_at=now, now=now)
        log_event(log, "shift_fanout_started", shift_id=shift_id)
    return await fanout_state(session, tenant_id, shift_id)


async def run_round(
    session: AsyncSession, tenant_id: str, shift_id: str, number: int, *, now: datetime
) -> int:
    """The escalation job: re-read the world; if the shift is still open and not started,
    offer it on this round's channel. Returns how many offers were sent (0 if moved on)."""
    shift = await require_shift(session, tenant_id, shift_id)
    fanout = await FanOutRepository(session, tenant_id).for_shift(shift_id)
    if fanout is None or shift.status != "open" or shift.start_time <= now:
        return 0
    ladder = ladders.from_document(fanout.ladder)
    round_ = ladders.round_number(ladder, number)
    if round_ is None:
        return 0
    sent = await send_round(session, shift, round_, now=now)
    await _advance(session, fanout, number)
    await schedule_next_round(
        session, shift, ladder, after=number, started_at=fanout.started_at, now=now
    )
    return sent


async def send_round(session: AsyncSession, shift: Shift, round_: Round, *, now: datetime) -> int:
    candidates = await qualifying_caregivers(session, shift, channel=round_.channel)
    offer_ids = [new_id("off") for _ in candidates]
    message_ids = [new_id("msg") for _ in candidates]
    inserted = set(
        await OfferRepository(session, shift.tenant_id).insert_new(
            {
                "id": offer_ids,
                "caregiver_id": [c.id for c in candidates],
                "message_id": message_ids,
            },
            _offer_values(shift, round_, now),
        )
    )
    body = offer_text(shift, round_.channel)
    outgoing = [
        OutgoingMessage(
            channel=round_.channel,
            to=caregiver.phone,
            body=body,
            idempotency_key=message_key(shift.id, round_.number, caregiver.id),
            related=RelatedEntity(OFFER_KIND, offer_id),
            id=message_id,
        )
        for offer_id, message_id, caregiver in zip(offer_ids, message_ids, candidates, strict=True)
        if offer_id in inserted
    ]
    await queue_messages(session, tenant_id=shift.tenant_id, outgoing=outgoing)
    log_event(log, "shift_round_sent", shift_id=shift.id, round=round_.number, offers=len(outgoing))
    return len(outgoing)


async def schedule_next_round(
    session: AsyncSession,
    shift: Shift,
    ladder: list[Round],
    *,
    after: int,
    started_at: datetime,
    now: datetime,
) -> None:
    following = ladders.next_round(ladder, after)
    if following is None or following not in ladders.rounds_before(
        ladder, started_at, shift.start_time
    ):
        # The ladder is spent (its last round just went out) and the shift is still open.
        await shift_changed(session, shift, "unfilled", now=now, rounds=after)
        return
    await enqueue(
        session,
        ESCALATE,
        {"shift_id": shift.id, "round": following.number},
        run_at=ladders.due_at(started_at, following),
        tenant_id=shift.tenant_id,
        dedupe_key=round_key(shift.id, following.number),
    )


def _offer_values(shift: Shift, round_: Round, now: datetime) -> dict[str, Any]:
    """What every offer of one round shares."""
    return {
        "shift_id": shift.id,
        "round": round_.number,
        "channel": round_.channel,
        "sent_at": now,
    }


async def _advance(session: AsyncSession, fanout: FanOut, number: int) -> None:
    await session.execute(
        update(FanOut)
        .where(
            FanOut.tenant_id == fanout.tenant_id,
            FanOut.shift_id == fanout.shift_id,
            FanOut.current_round < number,
        )
        .values(current_round=number)
    )
