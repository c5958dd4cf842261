"""Builders for shift-fill tests (keyword-only, committed in their own transaction)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from caretime.db import transaction
from caretime.ids import new_id
from caretime.messaging import Message
from caretime.runtime import Runtime
from caretime.shifts import caregivers, service
from caretime.shifts.repository import OfferRepository
from caretime.shifts.schemas import CaregiverCreate, ShiftCreate
from caretime.tenancy import service as tenancy
from caretime.tenancy.policy import ShiftPolicy

# Tests on the real clock (live servers, processes) switch caregivers' quiet hours off
# (start == end), or at night every offer would wait for the morning.
NO_QUIET_HOURS = {"shifts": {"quiet_hours": {"start": "00:00", "end": "00:00"}}}


def phone(n: int) -> str:
    """A distinct dialable US number per n, in Boston: the test shifts are in New York's
    zone, so their caregivers' quiet hours (inferred from the phone) are New York's too."""
    return f"+1617{2000000 + n:07d}"


async def make_caregiver(
    runtime: Runtime,
    *,
    tenant_id: str,
    id: str,
    roles: list[str],
    n: int,
    active: bool = True,
) -> str:
    body = CaregiverCreate(id=id, name=f"Caregiver {n}", phone=phone(n), roles=roles, active=active)
    async with transaction(runtime.sessions) as session:
        created = await caregivers.create_caregiver(
            session, tenant_id, body, now=runtime.clock.now()
        )
    return created.id


async def make_caregivers(
    runtime: Runtime, *, tenant_id: str, count: int, roles: list[str]
) -> list[str]:
    """`count` caregivers c0000, c0001... with phones phone(0)... in one transaction."""
    async with transaction(runtime.sessions) as session:
        for n in range(count):
            body = CaregiverCreate(id=f"c{n:04d}", name=f"C{n}", phone=phone(n), roles=roles)
            await caregivers.create_caregiver(session, tenant_id, body, now=runtime.clock.now())
    return [f"c{n:04d}" for n in range(count)]


async def make_shift(
    runtime: Runtime,
    *,
    tenant_id: str,
    id: str,
    role: str = "RN",
    starts_in: timedelta = timedelta(hours=4),
    hours: int = 8,
    **fields: Any,
) -> str:
    start = runtime.clock.now() + starts_in
    body = ShiftCreate(
        id=id,
        role_required=role,
        start_time=start,
        end_time=start + timedelta(hours=hours),
        tz="America/New_York",
        **fields,
    )
    async with transaction(runtime.sessions) as session:
        shift = await service.create_shift(
            session, tenant_id, body, policy=ShiftPolicy(), now=runtime.clock.now()
        )
    return shift.id


async def make_offer(
    runtime: Runtime,
    *,
    tenant_id: str,
    shift_id: str,
    caregiver_id: str,
    round: int = 1,
    sent_at: datetime | None = None,
) -> str:
    offer_id = new_id("off")
    shared = {
        "shift_id": shift_id,
        "round": round,
        "channel": "sms",
        "sent_at": sent_at or runtime.clock.now(),
    }
    async with transaction(runtime.sessions) as session:
        offers = OfferRepository(session, tenant_id)
        await offers.insert_new({"id": [offer_id], "caregiver_id": [caregiver_id]}, shared)
    return offer_id


async def default_tenant_id(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
    return tenant.id


async def offer_messages(runtime: Runtime, *, channel: str | None = None) -> list[Message]:
    """Offer messages the provider accepted (it has an id for them), oldest first."""
    statement = select(Message).where(
        Message.related_kind == "shifts.offer", Message.provider_id.is_not(None)
    )
    if channel is not None:
        statement = statement.where(Message.channel == channel)
    async with runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(Message.created_at))).all())


async def phones_messaged(runtime: Runtime, *, channel: str) -> list[str]:
    return sorted(m.to_phone for m in await offer_messages(runtime, channel=channel))
