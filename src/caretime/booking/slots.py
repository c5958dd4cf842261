"""Free slots: computed from availability minus active appointments minus the minimum notice,
never stored. Ordered by (start, provider id) across providers, keyset-paginated."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.availability import effective_windows
from caretime.booking.bounds import Bound, span_in
from caretime.booking.errors import ProviderNotFound, RangeTooLong
from caretime.booking.grid import Slot, free_slots
from caretime.booking.localtime import utc_to_wall
from caretime.booking.repository import AppointmentRepository, ProviderRepository, RuleRepository
from caretime.errors import InvalidInput
from caretime.tenancy.policy import BookingPolicy

MAX_RANGE = timedelta(days=31)


async def find_slots(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    *,
    provider_ids: Sequence[str] | None,
    start: Bound,
    end: Bound,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[Slot], tuple[datetime, str] | None]:
    """Free slots from start to end: instants, or dates meaning each provider's local days."""
    providers = await ProviderRepository(session, tenant_id).many(provider_ids)
    if provider_ids is not None and len(providers) < len(set(provider_ids)):
        missing = sorted(set(provider_ids) - {p.id for p in providers})
        raise ProviderNotFound(f"no provider {missing[0]!r}", missing=missing)
    spans = {p.id: span_in(start, end, ZoneInfo(p.tz)) for p in providers}
    low, high = _covering(spans.values(), start, end)
    # Rules are stored per local date; one day either side covers every UTC offset.
    first, last = low.date() - timedelta(days=1), high.date() + timedelta(days=1)
    rules = await RuleRepository(session, tenant_id).rules(provider_ids, first, last)
    busy = await AppointmentRepository(session, tenant_id).busy(provider_ids, low, high, now)
    length = timedelta(minutes=policy.slot_minutes)
    slots: list[Slot] = []
    for provider in providers:
        zone, (begin, finish) = ZoneInfo(provider.tz), spans[provider.id]
        windows = effective_windows(
            rules.get(provider.id, []),
            zone,
            utc_to_wall(begin, zone).date(),
            utc_to_wall(finish, zone).date(),
        )
        earliest = max(begin, now + policy.min_notice)
        slots += free_slots(
            provider.id,
            windows,
            busy.get(provider.id, []),
            length=length,
            start=earliest,
            end=finish,
        )
    slots.sort()
    return _page(slots, limit, after)


def _covering(
    spans: Iterable[tuple[datetime, datetime]], start: Bound, end: Bound
) -> tuple[datetime, datetime]:
    """The instants every provider's span lies within (checked as one range)."""
    listed = list(spans) or [span_in(start, end, ZoneInfo("UTC"))]
    for begin, finish in listed:
        check_range(begin, finish)
    return min(begin for begin, _ in listed), max(finish for _, finish in listed)


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidInput("end must be after start")
    if end - start > MAX_RANGE:
        raise RangeTooLong(f"a slot search covers at most {MAX_RANGE.days} days")


def _page(
    slots: list[Slot], limit: int, after: tuple[datetime, str] | None
) -> tuple[list[Slot], tuple[datetime, str] | None]:
    if after is not None:
        slots = [slot for slot in slots if (slot.start, slot.provider_id) > after]
    if len(slots) <= limit:
        return slots, None
    last = slots[limit - 1]
    return slots[:limit], (last.start, last.provider_id)
