"""Waitlist endpoints: join, read, leave."""

from __future__ import annotations

from fastapi import APIRouter, status

from caretime.booking import waitlist
from caretime.booking.errors import ProviderNotFound, WaitlistEntryNotFound
from caretime.booking.schemas import WaitlistIn, WaitlistOut
from caretime.deps import ClockDep, SessionDep
from caretime.openapi import problems
from caretime.storable import PathText
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["booking"])


@router.post("/waitlist", status_code=status.HTTP_201_CREATED, responses=problems(ProviderNotFound))
async def join_waitlist(
    body: WaitlistIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> WaitlistOut:
    """Put a patient on the waitlist for a time between `earliest` and `latest` (at one
    provider, or any). When such a time is freed, waitlisted patients are texted in waves and
    the first to answer yes gets it."""
    entry = await waitlist.join(session, tenant.id, body, now=clock.now())
    return WaitlistOut.model_validate(entry)


@router.get("/waitlist/{entry_id}", responses=problems(WaitlistEntryNotFound))
async def get_waitlist_entry(
    entry_id: PathText, tenant: TenantDep, session: SessionDep
) -> WaitlistOut:
    """One waitlist entry: `waiting`, `booked` (with its appointment) or `removed`."""
    return WaitlistOut.model_validate(await waitlist.get(session, tenant.id, entry_id))


@router.delete("/waitlist/{entry_id}", responses=problems(WaitlistEntryNotFound))
async def leave_waitlist(
    entry_id: PathText, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> WaitlistOut:
    """Take a patient off the waitlist; no further offers are sent to them."""
    entry = await waitlist.leave(session, tenant.id, entry_id, now=clock.now())
    return WaitlistOut.model_validate(entry)
