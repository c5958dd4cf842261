"""Offering a freed time to the waitlist, first yes wins (caretime.firstyes): waves of texts
to waiting patients in join order, and the claim — one conditional UPDATE of the opening —
whose single winner gets a hold; everyone else is told the time is gone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import prompts, reminders, reservations, slots, waitlist
from caretime.booking.chat import Chat
from caretime.booking.models import BookingPrompt, Provider, WaitlistEntry, WaitlistOpening
from caretime.booking.replies import Reply
from caretime.booking.repository import booking_policy
from caretime.booking.service import require_provider
from caretime.booking.texts import describe
from caretime.clock import isoformat_z
from caretime.dispatch import JobContext, enqueue, job_handler
from caretime.errors import CaretimeError
from caretime.events import emit
from caretime.firstyes import claim_first, offer_key
from caretime.messaging import RouteResult
from caretime.tenancy.policy import BookingPolicy


@job_handler(waitlist.WAVE)
async def send_wave(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Re-read the opening: still open and the time still free, or close it. Text the next
    waiting patients in join order (skipping any inside quiet hours now), then plan the next
    wave while anyone is left."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    now, session = ctx.now(), ctx.session
    opening = await session.get(WaitlistOpening, payload["opening_id"])
    if opening is None or opening.status != "open":
        return
    policy = await booking_policy(session, tenant_id)
    if not await _still_free(session, opening, policy, now):
        opening.status, opening.updated_at = "closed", now
        return
    provider = await require_provider(session, tenant_id, opening.provider_id)
    waiting = await _not_yet_offered(session, opening, policy, now)
    awake = [e for e in waiting if _awake(e, provider, policy, now)]
    wave = awake[: policy.waitlist_wave_size]
    await _offer(session, opening, provider, wave, payload["wave"], policy, now)
    if len(waiting) > len(wave):
        await _next_wave(session, opening, payload["wave"] + 1, now + policy.waitlist_wave_gap)


async def _still_free(
    session: AsyncSession, opening: WaitlistOpening, policy: BookingPolicy, now: datetime
) -> bool:
    start = opening.slot_start
    query = slots.SlotQuery([opening.provider_id], start, start + timedelta(seconds=1))
    found, _ = await slots.find_slots(
        session, opening.tenant_id, policy, query, now=now, limit=1, after=None
    )
    return any(slot.start == start for slot in found)


async def _not_yet_offered(
    session: AsyncSession, opening: WaitlistOpening, policy: BookingPolicy, now: datetime
) -> Sequence[WaitlistEntry]:
    offered = select(BookingPrompt.waitlist_id).where(
        BookingPrompt.tenant_id == opening.tenant_id,
        BookingPrompt.kind == "waitlist",
        BookingPrompt.message_key.like(f"waitlist:{opening.id}:%"),
    )
    statement = (
        select(WaitlistEntry)
        .where(
            WaitlistEntry.tenant_id == opening.tenant_id,
            WaitlistEntry.status == "waiting",
            or_(
                WaitlistEntry.provider_id.is_(None),
                WaitlistEntry.provider_id == opening.provider_id,
            ),
            WaitlistEntry.earliest <= opening.slot_start,
            WaitlistEntry.latest >= opening.slot_start,
            WaitlistEntry.id.not_in(offered),
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    )
    return (await session.scalars(statement)).all()


def _awake(entry: WaitlistEntry, provider: Provider, policy: BookingPolicy, now: datetime) -> bool:
    return reminders.patient_awake_at(entry.phone, provider, policy, now) == now


async def _offer(
    session: AsyncSession,
    opening: WaitlistOpening,
    provider: Provider,
    entries: Sequence[WaitlistEntry],
    wave: int,
    policy: BookingPolicy,
    now: datetime,
) -> None:
    visit = describe(provider, opening.slot_start)
    body = f"A time opened up: {visit}. Reply YES to take it (first come, first served)."
    option = {
        "opening_id": opening.id,
        "provider_id": opening.provider_id,
        "slot_start": isoformat_z(opening.slot_start),
    }
    for entry in entries:
        question = prompts.Question(
            "waitlist",
            entry.phone,
            body,
            offer_key("waitlist", opening.id, wave, "entry", entry.id),
            expires_at=opening.slot_start - policy.min_notice,
            waitlist_id=entry.id,
            options=[option],
        )
        await prompts.ask(session, opening.tenant_id, question, now=now)
    opening.wave, opening.updated_at = wave, now
    if entries:
        data = {"opening_id": opening.id, "wave": wave, "offered": len(entries)}
        await emit(
            session,
            tenant_id=opening.tenant_id,
            type="waitlist.offered",
            subject=("waitlist_opening", opening.id),
            data=data,
            now=now,
        )


async def _next_wave(
    session: AsyncSession, opening: WaitlistOpening, wave: int, at: datetime
) -> None:
    await enqueue(
        session,
        waitlist.WAVE,
        {"opening_id": opening.id, "wave": wave},
        run_at=at,
        tenant_id=opening.tenant_id,
        dedupe_key=f"{waitlist.WAVE}:{opening.id}:{wave}",
    )


@job_handler(waitlist.SCAN)
async def scan(ctx: JobContext, payload: dict[str, Any]) -> None:
    """New availability: for each waiting patient (join order) who could see this provider,
    open the earliest free time in their range that nobody else was given in this scan."""
    tenant_id = ctx.job.tenant_id
    assert tenant_id is not None
    now, session = ctx.now(), ctx.session
    policy = await booking_policy(session, tenant_id)
    provider_id = payload["provider_id"]
    statement = (
        select(WaitlistEntry)
        .where(
            WaitlistEntry.tenant_id == tenant_id,
            WaitlistEntry.status == "waiting",
            or_(WaitlistEntry.provider_id.is_(None), WaitlistEntry.provider_id == provider_id),
            WaitlistEntry.latest > now + policy.min_notice,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    )
    chosen: set[datetime] = set()
    for entry in (await session.scalars(statement)).all():
        start = max(entry.earliest, now)
        end = min(entry.latest + timedelta(seconds=1), start + slots.MAX_RANGE)
        query = slots.SlotQuery([provider_id], start, end)
        found, _ = await slots.find_slots(
            session, tenant_id, policy, query, now=now, limit=len(chosen) + 1, after=None
        )
        fresh = [slot.start for slot in found if slot.start not in chosen]
        if fresh:
            chosen.add(fresh[0])
            await waitlist.open_time(session, tenant_id, provider_id, fresh[0], now=now)


async def answer_offer(chat: Chat) -> RouteResult:
    """YES claims the time; NO passes (the patient stays on the waitlist)."""
    reply = chat.said.reply
    if reply in (Reply.no, Reply.cancel):
        await chat.done()
        return chat.result("declined", "OK, you stay on the waitlist.")
    if reply is not Reply.yes:
        return chat.result("clarify", "Reply YES to take this time, or NO to pass.")
    await chat.done()
    option = chat.prompt.options[0]
    entry = await waitlist.get(chat.session, chat.tenant_id, chat.prompt.waitlist_id or "")
    if entry.status != "waiting":
        return chat.result("unavailable", "You are no longer on the waitlist.")
    won = await claim_first(
        chat.session,
        WaitlistOpening,
        tenant_id=chat.tenant_id,
        subject_id=option["opening_id"],
        values={"status": "claimed", "claimed_by": entry.id, "updated_at": chat.now},
    )
    if not won:
        return _gone(chat)
    return await _hold(chat, entry, option)


def _gone(chat: Chat) -> RouteResult:
    text = "Sorry, that time was just taken by someone else. You stay on the waitlist."
    return chat.result("already_taken", text)


async def _hold(chat: Chat, entry: WaitlistEntry, option: dict[str, str]) -> RouteResult:
    """The winner's hold, under the same guarantees as any reservation."""
    request = reservations.ReservationRequest(
        option["provider_id"],
        datetime.fromisoformat(option["slot_start"].replace("Z", "+00:00")),
        entry.client_id,
        idempotency_key=f"waitlist:{option['opening_id']}",
        phone=entry.phone,
    )
    opening = await chat.session.get(WaitlistOpening, option["opening_id"])
    assert opening is not None
    try:
        hold = await reservations.reserve(
            chat.session, chat.tenant_id, await chat.policy(), request, now=chat.now
        )
    except CaretimeError:  # booked through the API meanwhile
        opening.status = "closed"
        return _gone(chat)
    entry.status, entry.appointment_id, entry.updated_at = "booked", hold.id, chat.now
    await _claimed_event(chat, entry, hold.id)
    provider = await chat.provider(hold.provider_id)
    text = (
        f"It's yours: {describe(provider, hold.slot_start)} is held for you. "
        "Reply YES to confirm it, or NO to release it."
    )
    question = prompts.Question(
        "confirm",
        entry.phone,
        text,
        f"booking:{hold.id}:confirm",
        expires_at=hold.slot_start,
        appointment_id=hold.id,
    )
    await prompts.open_(chat.session, chat.tenant_id, question, now=chat.now)
    return chat.result("held", text, new_reservation_id=hold.id)


async def _claimed_event(chat: Chat, entry: WaitlistEntry, appointment_id: str) -> None:
    await emit(
        chat.session,
        tenant_id=chat.tenant_id,
        type="waitlist.claimed",
        subject=("waitlist", entry.id),
        data={"status": "booked", "appointment_id": appointment_id},
        now=chat.now,
    )
