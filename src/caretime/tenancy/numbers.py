"""The numbers tenants send from: a number belongs to one tenant, so a reply to it (Twilio's
`To`) names the tenant it is for. The first number is the one messages go out from."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import phonenumbers
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.config import Settings
from caretime.errors import Conflict, InvalidInput
from caretime.events import emit
from caretime.tenancy.models import Tenant, TenantNumber

MAX_NUMBERS = 20


def normalized(raw: str) -> str:
    """A sending number in E.164, or InvalidInput saying why not."""
    try:
        parsed = phonenumbers.parse(raw.strip(), "US")
    except phonenumbers.NumberParseException:
        raise InvalidInput(f"{raw[:40]!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(f"{raw[:40]!r} is not a possible phone number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


async def numbers_of(session: AsyncSession, tenant_id: str) -> list[str]:
    rows = await session.scalars(
        select(TenantNumber.number)
        .where(TenantNumber.tenant_id == tenant_id)
        .order_by(TenantNumber.position)
    )
    return list(rows)


async def sending_number(session: AsyncSession, tenant_id: str) -> str | None:
    """The number the tenant's messages go out from, if it owns one."""
    numbers = await numbers_of(session, tenant_id)
    return numbers[0] if numbers else None


async def owner_of(session: AsyncSession, number: str) -> str | None:
    """The id of the tenant that owns `number` (as given, or in E.164)."""
    candidates = {number.strip()}
    with contextlib.suppress(InvalidInput):
        candidates.add(normalized(number))
    found = await session.scalars(
        select(TenantNumber.tenant_id).where(TenantNumber.number.in_(sorted(candidates)))
    )
    return found.first()


async def replace_numbers(
    session: AsyncSession, tenant_id: str, raw: Sequence[str], *, now: datetime
) -> list[str]:
    """Make `raw` (in order) the tenant's numbers. A number another tenant owns is a 409,
    decided by the primary key even when two tenants claim it at the same moment."""
    numbers = list(dict.fromkeys(normalized(number) for number in raw))
    if len(numbers) > MAX_NUMBERS:
        raise InvalidInput(f"a tenant may own at most {MAX_NUMBERS} numbers")
    await _refuse_taken(session, tenant_id, numbers)
    await session.execute(delete(TenantNumber).where(TenantNumber.tenant_id == tenant_id))
    rows = [
        TenantNumber(tenant_id=tenant_id, number=number, position=position, created_at=now)
        for position, number in enumerate(numbers)
    ]
    try:
        async with session.begin_nested():
            session.add_all(rows)
    except IntegrityError:
        raise Conflict("one of these numbers was just given to another tenant") from None
    await emit(
        session,
        tenant_id=tenant_id,
        type="tenant.numbers_changed",
        subject=("tenant", tenant_id),
        data={"numbers": numbers},
        now=now,
    )
    return numbers


async def _refuse_taken(session: AsyncSession, tenant_id: str, numbers: list[str]) -> None:
    taken = await session.scalars(
        select(TenantNumber.number).where(
            TenantNumber.number.in_(numbers), TenantNumber.tenant_id != tenant_id
        )
    )
    first = taken.first()
    if first is not None:
        raise Conflict(f"{first} belongs to another tenant: a number has one tenant")


async def assign_configured(session: AsyncSession, settings: Settings, *, now: datetime) -> None:
    """Numbers from the configuration: CARETIME_TENANT_NUMBERS per tenant name, and
    CARETIME_TWILIO_FROM for the default tenant while it owns no number and nobody owns it."""
    for name, numbers in settings.tenant_numbers.items():
        tenant = await _tenant_named(session, name)
        wanted = [normalized(number) for number in numbers]
        if tenant is not None and await numbers_of(session, tenant.id) != wanted:
            await replace_numbers(session, tenant.id, wanted, now=now)
    default = await _tenant_named(session, settings.default_tenant)
    shared = settings.twilio_from.strip()
    if default is None or not shared or await numbers_of(session, default.id):
        return
    if await owner_of(session, shared) is None:
        await replace_numbers(session, default.id, [shared], now=now)


async def _tenant_named(session: AsyncSession, name: str) -> Tenant | None:
    found = await session.scalars(select(Tenant).where(Tenant.name == name))
    return found.first()


async def tenants_without_number(session: AsyncSession) -> list[str]:
    """Names of tenants that own no number, when there are several tenants."""
    tenants = await session.scalar(select(func.count()).select_from(Tenant))
    if (tenants or 0) < 2:
        return []
    owning = select(TenantNumber.tenant_id).distinct()
    rows = await session.scalars(
        select(Tenant.name).where(Tenant.id.not_in(owning)).order_by(Tenant.name)
    )
    return list(rows)


def twilio_refusal(settings: Settings, unnumbered: Sequence[str]) -> str | None:
    """Why caretime must not start, if Twilio is on and a tenant would share a number."""
    if "twilio" not in (settings.sms_provider, settings.voice_provider) or not unnumbered:
        return None
    names = ", ".join(repr(name) for name in unnumbered[:5])
    more = f" and {len(unnumbered) - 5} more" if len(unnumbered) > 5 else ""
    return (
        "refusing to start: with Twilio a reply reaches the tenant that owns the number it was "
        f"sent to, and tenant(s) {names}{more} own no number; give each its own "
        "(caretime tenants numbers NAME NUMBER, CARETIME_TENANT_NUMBERS or "
        "PUT /tenants/me/numbers)"
    )
