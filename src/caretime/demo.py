"""Demo data for `make run`: patients to call, a clinic's providers with availability,
caregivers with an open shift, so every page has something to show. Loaded once, into the
default tenant."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import service as booking
from caretime.booking.repository import ProviderRepository
from caretime.booking.schemas import ProviderIn, WeeklyTemplateIn
from caretime.db import transaction
from caretime.outreach import calls
from caretime.outreach.schemas import CallIn
from caretime.runtime import Runtime
from caretime.shifts import caregivers
from caretime.shifts import service as shifts
from caretime.shifts.schemas import CaregiverCreate, ShiftCreate
from caretime.tenancy import service as tenancy
from caretime.tenancy.models import Tenant
from caretime.tenancy.service import policy_of

PROVIDERS = (
    ("dr-jekyll", "Dr. Henry Jekyll", "America/New_York", ["mon", "tue", "wed", "thu", "fri"]),
    ("dr-lanyon", "Dr. Hastie Lanyon", "America/Los_Angeles", ["mon", "tue", "wed", "thu"]),
)
# 555-01xx numbers are reserved for fiction: the simulator's phones, never a real person's.
PATIENTS = (
    ("Ada Lovelace", "+12125550111"),
    ("Grace Hopper", "+13125550112"),
    ("Katherine Johnson", "+13035550113"),
    ("Mary Jackson", "+12065550114"),
)
CAREGIVERS = (
    ("cg-alice", "Alice Ongwele", "+12065550101", ["RN"]),
    ("cg-wei", "Wei Yan", "+12065550102", ["LPN", "CNA"]),
    ("cg-barry", "Barry Kozumikov", "+12065550103", ["RN", "LPN"]),
    ("cg-dana", "Dana Ruiz", "+13125550104", ["CNA"]),
)


async def load_demo_data(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
        if await ProviderRepository(session, tenant.id).get("dr-jekyll") is not None:
            return
        now = runtime.clock.now()
        await _calls(session, tenant, now)
        await _providers(session, tenant, now)
        await _caregivers_and_shift(session, tenant, now)


async def _calls(session: AsyncSession, tenant: Tenant, now: datetime) -> None:
    """One call per patient at the earliest moment the rules allow."""
    calling = policy_of(tenant).calling
    for name, phone in PATIENTS:
        await calls.create_call(
            session, tenant.id, calling, CallIn(name=name, phone=phone), now=now
        )


async def _providers(session: AsyncSession, tenant: Tenant, now: datetime) -> None:
    policy = policy_of(tenant).booking
    for provider_id, name, tz, weekdays in PROVIDERS:
        body = ProviderIn(id=provider_id, name=name, tz=tz)
        await booking.create_provider(session, tenant.id, body, now=now)
        template = WeeklyTemplateIn.model_validate(
            {"weekdays": weekdays, "start": "09:00", "end": "17:00", "from": now.date()}
        )
        await booking.change_availability(
            session, tenant.id, policy, provider_id, [template], force=False, now=now
        )


async def _caregivers_and_shift(session: AsyncSession, tenant: Tenant, now: datetime) -> None:
    for caregiver_id, name, phone, roles in CAREGIVERS:
        body = CaregiverCreate(id=caregiver_id, name=name, phone=phone, roles=roles)
        await caregivers.create_caregiver(session, tenant.id, body, now=now)
    policy = policy_of(tenant).shifts
    zone = ZoneInfo(policy.default_tz)
    tomorrow = (now.astimezone(zone) + timedelta(days=1)).date()
    start = datetime.combine(tomorrow, time(8, 0), zone)
    shift = ShiftCreate(
        id="demo-rn-day",
        role_required="RN",
        start_time=start,
        end_time=start + timedelta(hours=8),
        location="Riverside, 12 Elm St",
    )
    await shifts.create_shift(session, tenant.id, shift, policy=policy, now=now)
