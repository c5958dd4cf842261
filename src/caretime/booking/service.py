"""Providers and their availability: create and read providers, add or remove time, and
read the effective windows. Takes the session first, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import transitions, waitlist
from caretime.booking.availability import Window, apply_dated, dates, effective_windows
from caretime.booking.errors import (
    AppointmentsInTheWay,
    ProviderExists,
    ProviderNotFound,
    TemplateNotFound,
)
from caretime.booking.intervals import Span
from caretime.booking.localtime import wall_to_utc
from caretime.booking.models import Appointment, AvailabilityRule, Provider
from caretime.booking.repository import AppointmentRepository, ProviderRepository, RuleRepository
from caretime.booking.schemas import (
    DatedWindowIn,
    ProviderIn,
    ProviderPatch,
    WeeklyTemplateIn,
    WindowIn,
)
from caretime.booking.validation import validate_windows
from caretime.ids import new_id
from caretime.tenancy.policy import WEEKDAYS, BookingPolicy


async def create_provider(
    session: AsyncSession, tenant_id: str, body: ProviderIn, *, now: datetime
) -> Provider:
    provider = Provider(
        id=body.id or new_id("prv"),
        name=body.name,
        tz=body.tz,
        max_per_day=body.max_per_day,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            ProviderRepository(session, tenant_id).add(provider)
            await session.flush()
    except IntegrityError:
        raise ProviderExists(f"provider {provider.id!r} already exists") from None
    return provider


async def require_provider(session: AsyncSession, tenant_id: str, provider_id: str) -> Provider:
    provider = await ProviderRepository(session, tenant_id).get(provider_id)
    if provider is None:
        raise ProviderNotFound(f"no provider {provider_id!r}")
    return provider


async def set_limits(
    session: AsyncSession, tenant_id: str, provider_id: str, body: ProviderPatch
) -> Provider:
    """Visits already booked stay booked when a limit is lowered; it applies to new ones."""
    provider = await require_provider(session, tenant_id, provider_id)
    provider.max_per_day = body.max_per_day
    await session.flush()
    return provider


async def list_providers(
    session: AsyncSession, tenant_id: str, *, limit: int, after: str | None
) -> tuple[Sequence[Provider], str | None]:
    repo = ProviderRepository(session, tenant_id)
    return await repo.page(repo.select(), limit=limit, after=after)


@dataclass
class AvailabilityChange:
    templates: list[AvailabilityRule] = field(default_factory=list)
    cancelled: list[Appointment] = field(default_factory=list)


async def change_availability(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    provider_id: str,
    items: Sequence[WindowIn],
    *,
    force: bool,
    now: datetime,
) -> AvailabilityChange:
    """Apply templates and dated adds/removes; time taken from under active appointments
    cancels holds, and cancels confirmed appointments only when forced (else 409)."""
    provider = await require_provider(session, tenant_id, provider_id)
    spans = validate_windows(items, policy.slot_minutes)
    change = AvailabilityChange()
    rules = RuleRepository(session, tenant_id)
    for item, span in zip(items, spans, strict=True):
        if isinstance(item, WeeklyTemplateIn):
            change.templates.append(rules.add(_template_row(provider.id, item, span, now)))
    await _apply_dated(rules, provider.id, list(zip(items, spans, strict=True)), now)
    await session.flush()
    if any(getattr(item, "action", "add") == "add" for item in items):
        await waitlist.added_time(session, tenant_id, provider.id, now=now)
    removed_days = sorted(
        {i.date for i in items if isinstance(i, DatedWindowIn) and i.action == "remove"}
    )
    if removed_days:
        change.cancelled = await _clear_removed_time(
            session, tenant_id, provider, removed_days, force=force, now=now
        )
    return change


async def delete_template(
    session: AsyncSession,
    tenant_id: str,
    provider_id: str,
    template_id: str,
    *,
    force: bool,
    now: datetime,
) -> list[Appointment]:
    provider = await require_provider(session, tenant_id, provider_id)
    rules = RuleRepository(session, tenant_id)
    template = await rules.get(template_id)
    if template is None or template.provider_id != provider.id or template.kind != "weekly":
        raise TemplateNotFound(f"provider {provider_id!r} has no template {template_id!r}")
    await session.delete(template)
    await session.flush()
    zone = ZoneInfo(provider.tz)
    first = max(template.valid_from or now.date(), now.astimezone(zone).date())
    last = template.valid_until or first + timedelta(days=366)
    return await _clear_removed_time(
        session, tenant_id, provider, list(dates(first, last)), force=force, now=now
    )


async def effective(
    session: AsyncSession, tenant_id: str, provider: Provider, first: date, last: date
) -> list[Window]:
    rules = await RuleRepository(session, tenant_id).rules([provider.id], first, last)
    return effective_windows(rules.get(provider.id, []), ZoneInfo(provider.tz), first, last)


async def templates(
    session: AsyncSession, tenant_id: str, provider_id: str
) -> Sequence[AvailabilityRule]:
    return await RuleRepository(session, tenant_id).templates(provider_id)


def _template_row(
    provider_id: str, item: WeeklyTemplateIn, span: Span, now: datetime
) -> AvailabilityRule:
    bits = sum(1 << WEEKDAYS.index(day) for day in set(item.weekdays))
    return AvailabilityRule(
        id=new_id("avl"),
        provider_id=provider_id,
        kind="weekly",
        weekdays=bits,
        valid_from=item.valid_from,
        valid_until=item.valid_until,
        start_minute=span[0],
        end_minute=span[1],
        created_at=now,
    )


async def _apply_dated(
    rules: RuleRepository, provider_id: str, items: Sequence[tuple[WindowIn, Span]], now: datetime
) -> None:
    """Rewrite each touched date's dated rows: adds merged, removes merged, newest wins."""
    dated = [(item, span) for item, span in items if isinstance(item, DatedWindowIn)]
    if not dated:
        return
    days = sorted({item.date for item, _ in dated})
    state: dict[date, tuple[list[Span], list[Span]]] = {day: ([], []) for day in days}
    for row in await rules.dated(provider_id, days):
        assert row.day is not None
        state[row.day][0 if row.kind == "add" else 1].append((row.start_minute, row.end_minute))
    for item, span in dated:
        adds, removes = state[item.date]
        state[item.date] = apply_dated(adds, removes, span, remove=item.action == "remove")
    await rules.delete_dated(provider_id, days)
    for day, (adds, removes) in state.items():
        for kind, spans in (("add", adds), ("remove", removes)):
            for start, end in spans:
                rules.add(_dated_row(provider_id, day, kind, (start, end), now))


def _dated_row(
    provider_id: str, day: date, kind: str, span: Span, now: datetime
) -> AvailabilityRule:
    return AvailabilityRule(
        id=new_id("avl"),
        provider_id=provider_id,
        kind=kind,
        day=day,
        start_minute=span[0],
        end_minute=span[1],
        created_at=now,
    )


async def _clear_removed_time(
    session: AsyncSession,
    tenant_id: str,
    provider: Provider,
    days: Sequence[date],
    *,
    force: bool,
    now: datetime,
) -> list[Appointment]:
    """Appointments on `days` no longer inside availability: 409 for confirmed ones unless
    forced; otherwise they (and any such holds) are cancelled and returned."""
    zone = ZoneInfo(provider.tz)
    start, end = wall_to_utc(days[0], 0, zone), wall_to_utc(days[-1], 24 * 60, zone)
    appointments = await AppointmentRepository(session, tenant_id).active_between(
        provider.id, start, end, now
    )
    if not appointments:
        return []
    windows = await effective(session, tenant_id, provider, days[0], days[-1])
    displaced = [a for a in appointments if not _covered(a, windows)]
    confirmed = [a.id for a in displaced if a.status == "confirmed"]
    if confirmed and not force:
        raise AppointmentsInTheWay(
            f"{len(confirmed)} confirmed appointment(s) fall in the removed time; "
            "repeat with ?force=true to cancel them",
            appointment_ids=confirmed,
        )
    return await transitions.cancel_many(session, tenant_id, [a.id for a in displaced], now=now)


def _covered(appointment: Appointment, windows: Sequence[Window]) -> bool:
    """Whether the visit with its buffers still lies inside one window."""
    span = (appointment.occupied_start, appointment.occupied_end)
    return any(w.start <= span[0] and span[1] <= w.end for w in windows)


def template_fields(row: AvailabilityRule) -> dict[str, Any]:
    return {
        "id": row.id,
        "weekdays": [day for bit, day in enumerate(WEEKDAYS) if row.weekdays >> bit & 1],
        "start": minute_text(row.start_minute),
        "end": minute_text(row.end_minute),
        "from": row.valid_from,
        "until": row.valid_until,
    }


def minute_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
