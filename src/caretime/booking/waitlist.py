"""The waitlist: patients waiting for an earlier time, and the freed times (openings) offered
to them. A time frees when a hold expires, a visit is cancelled or denied, or availability is
added; each opening is texted to waiting patients in join order, in waves (see
waitlist_offers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.errors import ProviderNotFound, WaitlistEntryNotFound
from caretime.booking.models import Appointment, WaitlistEntry, WaitlistOpening
from caretime.booking.repository import ProviderRepository
from caretime.booking.schemas import WaitlistIn
from caretime.dispatch import enqueue
from caretime.events import emit
from caretime.ids import new_id

WAVE = "booking.waitlist_wave"
SCAN = "booking.waitlist_scan"


async def join(
    session: AsyncSession, tenant_id: str, body: WaitlistIn, *, now: datetime
) -> WaitlistEntry:
    providers = ProviderRepository(session, tenant_id)
    if body.provider_id is not None and await providers.get(body.provider_id) is None:
        raise ProviderNotFound(f"no provider {body.provider_id!r}")
    entry = WaitlistEntry(
        id=new_id("wl"),
        tenant_id=tenant_id,
        client_id=body.client_id,
        phone=body.phone,
        provider_id=body.provider_id,
        earliest=body.earliest,
        latest=body.latest,
        status="waiting",
        created_at=now,
        updated_at=now,
    )
    session.add(entry)
    await session.flush()
    await _event(session, entry, "waitlist.joined", now)
    return entry


async def get(session: AsyncSession, tenant_id: str, entry_id: str) -> WaitlistEntry:
    entry = (
        await session.scalars(
            select(WaitlistEntry).where(
                WaitlistEntry.tenant_id == tenant_id, WaitlistEntry.id == entry_id
            )
        )
    ).first()
    if entry is None:
        raise WaitlistEntryNotFound(f"no waitlist entry {entry_id!r}")
    return entry


async def leave(
    session: AsyncSession, tenant_id: str, entry_id: str, *, now: datetime
) -> WaitlistEntry:
    """Removed from the waitlist (a booked entry keeps its visit); again: unchanged."""
    entry = await get(session, tenant_id, entry_id)
    if entry.status == "waiting":
        entry.status, entry.updated_at = "removed", now
        await session.flush()
        await _event(session, entry, "waitlist.removed", now)
    return entry


async def freed(session: AsyncSession, appointment: Appointment, *, now: datetime) -> None:
    """A visit's time was given up: offer it to the waitlist (if it lies ahead)."""
    if appointment.slot_start > now:
        await open_time(
            session,
            appointment.tenant_id,
            appointment.provider_id,
            appointment.slot_start,
            now=now,
        )


async def open_time(
    session: AsyncSession, tenant_id: str, provider_id: str, slot_start: datetime, *, now: datetime
) -> None:
    """Open the time to the waitlist (once: a time already open is left as it is) and start
    its first wave now. Nothing when nobody waits for it (the usual case costs one query)."""
    if not await _anyone_waiting(session, tenant_id, provider_id, slot_start):
        return
    opening = WaitlistOpening(
        id=new_id("wlo"),
        tenant_id=tenant_id,
        provider_id=provider_id,
        slot_start=slot_start,
        status="open",
        wave=0,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(opening)
            await session.flush()
    except IntegrityError:
        return
    await enqueue(
        session,
        WAVE,
        {"opening_id": opening.id, "wave": 1},
        run_at=now,
        tenant_id=tenant_id,
        dedupe_key=f"{WAVE}:{opening.id}:1",
    )


async def added_time(
    session: AsyncSession, tenant_id: str, provider_id: str, *, now: datetime
) -> None:
    """New availability: look for times to offer (a job, so adding time stays quick)."""
    if not await _anyone_waiting(session, tenant_id, provider_id, None):
        return
    await enqueue(
        session,
        SCAN,
        {"provider_id": provider_id},
        run_at=now,
        tenant_id=tenant_id,
        dedupe_key=f"{SCAN}:{provider_id}:{now.isoformat()}",
    )


async def _anyone_waiting(
    session: AsyncSession, tenant_id: str, provider_id: str, at: datetime | None
) -> bool:
    statement = select(WaitlistEntry.id).where(
        WaitlistEntry.tenant_id == tenant_id,
        WaitlistEntry.status == "waiting",
        or_(WaitlistEntry.provider_id.is_(None), WaitlistEntry.provider_id == provider_id),
    )
    if at is not None:
        statement = statement.where(WaitlistEntry.earliest <= at, WaitlistEntry.latest >= at)
    return (await session.execute(statement.limit(1))).first() is not None


async def _event(session: AsyncSession, entry: WaitlistEntry, type_: str, now: datetime) -> None:
    data = {"status": entry.status, "provider_id": entry.provider_id}
    await emit(
        session,
        tenant_id=entry.tenant_id,
        type=type_,
        subject=("waitlist", entry.id),
        data=data,
        now=now,
    )
