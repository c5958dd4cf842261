"""Waitlist endpoints: join, read, leave."""

from __future__ import annotations

from fastapi import APIRouter, status

from caretime.booking import waitlist
from caretime.booking.schemas import WaitlistIn, WaitlistOut
from caretime.deps import ClockDep, SessionDep
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["booking"])


@router.post("/waitlist", status_code=status.HTTP_201_CREATED)
async def join_waitlist(
    body: WaitlistIn, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> WaitlistOut:
    entry = await waitlist.join(session, tenant.id, body, now=clock.now())
    return WaitlistOut.model_validate(entry)


@router.get("/waitlist/{entry_id}")
async def get_waitlist_entry(entry_id: str, tenant: TenantDep, session: SessionDep) -> WaitlistOut:
    return WaitlistOut.model_validate(await waitlist.get(session, tenant.id, entry_id))


@router.delete("/waitlist/{entry_id}")
async def leave_waitlist(
    entry_id: str, tenant: TenantDep, session: SessionDep, clock: ClockDep
) -> WaitlistOut:
    entry = await waitlist.leave(session, tenant.id, entry_id, now=clock.now())
    return WaitlistOut.model_validate(entry)
