"""Fan-out: offer an open shift to every qualifying caregiver, round after round.

Sending twice is impossible by construction, not by checking: the fan-out row is unique per
shift (a second POST, even a concurrent one, inserts nothing and only reports), an offer is
unique per (shift, caregiver, round) and only newly inserted offers are messaged, and every
message carries the idempotency key `shift:{id}:round:{n}:caregiver:{cid}`.

A shift dropped after it was filled is fanned out again as a new generation of the same
fan-out row: its offers and message keys carry the generation (`shift:{id}:fanout:{g}:...`),
so a re-fill is new messages, and jobs of an older generation find nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import enqueue
from caretime.ids import new_id
from caretime.messaging import Intent, OutgoingMessage, RelatedEntity, queue_messages
from caretime.messaging.keypad import keypad_context
from caretime.observability import log_event
from caretime.policy.quiet import QuietHours
from caretime.shifts import ladder as ladders
from caretime.shifts.alerts import schedule_unfilled_checks
from caretime.shifts.events import shift_changed
from caretime.shifts.ladder import Round
from caretime.shifts.models import FanOut, Shift
from caretime.shifts.progress import fanout_state
from caretime.shifts.qualify import Wave, qualifying_caregivers
from caretime.shifts.quiet import Timing, caregiver_zones, offer_timing
from caretime.shifts.repository import FanOutRepository, OfferRepository, ShiftEventRepository
from caretime.shifts.schemas import FanOutOut
from caretime.shifts.service import (
    ESCALATE,
    SEND_HELD,
    ShiftNotOpen,
    require_shift,
    round_key,
    shift_policy,
)
from caretime.shifts.texts import offer_text
from caretime.tenancy.policy import ShiftPolicy

log = logging.getLogger("caretime.shifts")
OFFER_KIND = "shifts.offer"
# A voice offer is answered on the keypad (texts.offer_text says so): 1 takes, 2 passes.
KEYPAD_CHOICES = keypad_context({"1": Intent.accept, "2": Intent.decline})


def message_key(shift_id: str, generation: int, round_number: int, caregiver_id: str) -> str:
    # Not caretime.firstyes.offer_key: a re-fill's keys also name the fan-out generation.
    return f"{round_key(shift_id, generation, round_number)}:caregiver:{caregiver_id}"


async def start_fanout(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> FanOutOut:
    """Start the fan-out (round 1 now, the next round as a job), restart a stopped one (the
    shift was dropped), or report the one that is running."""
    shift = await require_shift(session, tenant_id, shift_id)
    if shift.status != "open" or shift.start_time <= now:
        status = shift.status if shift.status != "open" else "started"
        raise ShiftNotOpen(f"shift {shift_id!r} is {status}", shift_status=shift.status)
    ladder = ladders.rounds_of(policy.escalation)
    generation = await _begin(session, shift, ladder, now)
    if generation is not None:
        sent = await send_round(
            session, shift, ladder[0], generation=generation, policy=policy, now=now
        )
        await shift_changed(session, shift, "fanout_started", now=now, offers=sent)
        await schedule_next_round(
            session, shift, ladder, generation=generation, after=1, started_at=now, now=now
        )
        sent_rounds = ladders.rounds_before(ladder, now, shift.start_time) or ladder[:1]
        await schedule_unfilled_checks(
            session,
            shift,
            last_round_at=ladders.due_at(now, sent_rounds[-1]),
            generation=generation,
            policy=policy,
        )
        log_event(log, "shift_fanout_started", shift_id=shift_id, generation=generation)
    return await fanout_state(session, tenant_id, shift_id)


async def _begin(
    session: AsyncSession, shift: Shift, ladder: list[Round], now: datetime
) -> int | None:
    """The generation this call starts, or None if a fan-out is already running. Both the
    insert and the restart are conditional writes: concurrent callers start it once."""
    fanouts = FanOutRepository(session, shift.tenant_id)
    document = ladders.to_document(ladder)
    row = {"shift_id": shift.id, "ladder": document, "started_at": now}
    if await fanouts.insert_once({**row, "current_round": 1, "generation": 1}):
        return 1
    return await fanouts.restart_if_stopped(shift.id, document, now)


async def run_round(
    session: AsyncSession,
    tenant_id: str,
    shift_id: str,
    number: int,
    *,
    generation: int,
    now: datetime,
) -> int:
    """The escalation job: re-read the world; if the shift is still open and not started and
    its fan-out is still this generation, offer it on this round's channel. Returns how many
    offers were sent (0 if the world moved on)."""
    shift = await require_shift(session, tenant_id, shift_id)
    fanout = await FanOutRepository(session, tenant_id).for_shift(shift_id)
    if fanout is None or not still_running(shift, fanout, generation, now):
        return 0
    ladder = ladders.from_document(fanout.ladder)
    round_ = ladders.round_number(ladder, number)
    if round_ is None:
        return 0
    policy = await shift_policy(session, tenant_id)
    sent = await send_round(session, shift, round_, generation=generation, policy=policy, now=now)
    await _advance(session, fanout, number)
    await schedule_next_round(
        session,
        shift,
        ladder,
        generation=generation,
        after=number,
        started_at=fanout.started_at,
        now=now,
    )
    return sent


def still_running(shift: Shift, fanout: FanOut, generation: int, now: datetime) -> bool:
    open_ = shift.status == "open" and shift.start_time > now
    return open_ and fanout.generation == generation and fanout.current_round > 0


async def send_round(
    session: AsyncSession,
    shift: Shift,
    round_: Round,
    *,
    generation: int,
    policy: ShiftPolicy,
    now: datetime,
) -> int:
    """Offer the round to whoever qualifies: messaged now, or held until their quiet hours
    end (a `shifts.send_held` job then), or not offered if that is after the start."""
    wave = Wave(round_.tiers, generation) if round_.tiers else None
    candidates = await qualifying_caregivers(
        session, shift, channel=round_.channel, policy=policy, wave=wave
    )
    timings = round_timings(shift, round_, candidates, policy, now)
    reachable = [(c, t) for c, t in zip(candidates, timings, strict=True) if t.at is not None]
    unreachable = [t for t in timings if t.at is None]
    _note_unreachable(session, shift, round_, generation, unreachable, now)
    offer_ids = [new_id("off") for _ in reachable]
    message_ids = [new_id("msg") for _ in reachable]
    inserted = set(
        await OfferRepository(session, shift.tenant_id).insert_new(
            {
                "id": offer_ids,
                "caregiver_id": [c.id for c, _ in reachable],
                "message_id": message_ids,
                "held_until": [t.at if t.held(now) else None for _, t in reachable],
                "quiet_note": [t.note for _, t in reachable],
            },
            _offer_values(shift, round_, generation, now),
        )
    )
    due = [
        (offer_id, message_id, caregiver)
        for offer_id, message_id, (caregiver, timing) in zip(
            offer_ids, message_ids, reachable, strict=True
        )
        if offer_id in inserted and not timing.held(now)
    ]
    held = {t.at for (_, t), o in zip(reachable, offer_ids, strict=True) if o in inserted}
    await offer_messages(session, shift, round_, generation, due)
    await hold_until(session, shift, round_, generation, sorted(a for a in held if a and a > now))
    log_event(log, "shift_round_sent", shift_id=shift.id, round=round_.number, offers=len(due))
    return len(due)


def _note_unreachable(
    session: AsyncSession,
    shift: Shift,
    round_: Round,
    generation: int,
    timings: list[Timing],
    now: datetime,
) -> None:
    """Caregivers whose quiet hours last past the start are not offered: the timeline says
    how many, in one entry (the candidates list names them)."""
    if timings:
        ShiftEventRepository(session, shift.tenant_id).record(
            shift.id,
            "quiet_hours",
            at=now,
            round=round_.number,
            generation=generation,
            not_offered=len(timings),
            note=timings[0].note,
        )


def round_timings(
    shift: Shift, round_: Round, candidates: Sequence[Any], policy: ShiftPolicy, now: datetime
) -> list[Timing]:
    """Each candidate's timing, worked out once per distinct set of zones."""
    quiet = QuietHours.of(policy.quiet_hours)
    by_zones: dict[tuple[str, ...], Timing] = {}
    timings = []
    for caregiver in candidates:
        zones = caregiver_zones(caregiver.tz, caregiver.phone, shift.tz)
        timing = by_zones.get(zones)
        if timing is None:
            timing = by_zones[zones] = offer_timing(
                now,
                zones,
                quiet,
                channel=round_.channel,
                shift_start=shift.start_time,
                urgent_overrides=policy.urgent_overrides_quiet,
            )
        timings.append(timing)
    return timings


async def offer_messages(
    session: AsyncSession,
    shift: Shift,
    round_: Round,
    generation: int,
    offers: Sequence[tuple[str, str, Any]],
) -> None:
    """Queue the messages of (offer id, message id, caregiver) in bulk."""
    body = offer_text(shift, round_.channel)
    context = KEYPAD_CHOICES if round_.channel == "voice" else None
    outgoing = [
        OutgoingMessage(
            channel=round_.channel,
            to=caregiver.phone,
            body=body,
            idempotency_key=message_key(shift.id, generation, round_.number, caregiver.id),
            related=RelatedEntity(OFFER_KIND, offer_id),
            id=message_id,
            context=context,
        )
        for offer_id, message_id, caregiver in offers
    ]
    await queue_messages(session, tenant_id=shift.tenant_id, outgoing=outgoing)


async def hold_until(
    session: AsyncSession, shift: Shift, round_: Round, generation: int, moments: list[datetime]
) -> None:
    """One `shifts.send_held` job per moment some held offers of the round may go out."""
    for moment in moments:
        key = f"{round_key(shift.id, generation, round_.number)}:held:{int(moment.timestamp())}"
        await enqueue(
            session,
            SEND_HELD,
            {"shift_id": shift.id, "round": round_.number, "generation": generation},
            run_at=moment,
            tenant_id=shift.tenant_id,
            dedupe_key=key,
        )


async def schedule_next_round(
    session: AsyncSession,
    shift: Shift,
    ladder: list[Round],
    *,
    generation: int,
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
        {"shift_id": shift.id, "round": following.number, "generation": generation},
        run_at=ladders.due_at(started_at, following),
        tenant_id=shift.tenant_id,
        dedupe_key=round_key(shift.id, generation, following.number),
    )


def _offer_values(shift: Shift, round_: Round, generation: int, now: datetime) -> dict[str, Any]:
    """What every offer of one round shares."""
    return {
        "shift_id": shift.id,
        "generation": generation,
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
            FanOut.generation == fanout.generation,
            FanOut.current_round < number,
        )
        .values(current_round=number)
    )
