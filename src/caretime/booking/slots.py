"""Free slots: computed from availability minus active appointments minus the minimum notice,
never stored. A visit type makes each slot as long as its visit and needs its buffers free.
Ordered by (start, provider id) across providers, keyset-paginated."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import visit_types
from caretime.booking.availability import effective_windows
from caretime.booking.bounds import Bound, span_in
from caretime.booking.errors import ProviderNotFound, RangeTooLong, VisitTypeNotFound
from caretime.booking.grid import Slot, VisitShape, free_slots
from caretime.booking.localtime import utc_to_wall
from caretime.booking.repository import (
    AppointmentRepository,
    Busy,
    ProviderRepository,
    ProviderView,
    RuleRepository,
)
from caretime.errors import InvalidInput
from caretime.tenancy.policy import BookingPolicy

MAX_RANGE = timedelta(days=31)
# Busy time and day counts are read this far beyond the range: buffers reach outside it, and
# a per-day limit counts the whole local day of a slot at the range's edge.
MARGIN = timedelta(days=1, hours=2)


@dataclass(frozen=True)
class SlotQuery:
    """Instants, or dates meaning each provider's local days (the end date included)."""

    provider_ids: Sequence[str] | None
    start: Bound
    end: Bound
    visit_type: str | None = None


async def find_slots(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    query: SlotQuery,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[Slot], tuple[datetime, str] | None]:
    """Free slots of the query's providers (those offering its visit type, if it names one)."""
    searched = await _searched(session, tenant_id, policy, query)
    spans = {p.id: span_in(query.start, query.end, ZoneInfo(p.tz)) for p, _ in searched}
    low, high = _covering(spans.values(), query.start, query.end)
    ids = query.provider_ids
    # Rules are stored per local date; one day either side covers every UTC offset.
    first, last = low.date() - timedelta(days=1), high.date() + timedelta(days=1)
    rules = await RuleRepository(session, tenant_id).rules(ids, first, last)
    busy = await AppointmentRepository(session, tenant_id).busy(
        ids, low - MARGIN, high + MARGIN, now
    )
    grid = timedelta(minutes=policy.slot_minutes)
    slots: list[Slot] = []
    for provider, shape in searched:
        zone, (begin, finish) = ZoneInfo(provider.tz), spans[provider.id]
        first_day, last_day = (utc_to_wall(t, zone).date() for t in (begin, finish))
        windows = effective_windows(rules.get(provider.id, []), zone, first_day, last_day)
        taken = busy.get(provider.id, [])
        occupied = [(b.occupied_start, b.occupied_end) for b in taken]
        earliest = max(begin, now + policy.min_notice)
        found = free_slots(
            provider.id, windows, occupied, grid=grid, shape=shape, start=earliest, end=finish
        )
        slots += _within_day_limit(found, provider, taken)
    slots.sort()
    return _page(slots, limit, after)


async def _searched(
    session: AsyncSession, tenant_id: str, policy: BookingPolicy, query: SlotQuery
) -> list[tuple[ProviderView, VisitShape]]:
    """Each searched provider with its visit shape; with a visit type, only those offering it."""
    wanted = query.provider_ids
    providers = await ProviderRepository(session, tenant_id).views(wanted)
    _check_all_found(wanted, [p.id for p in providers], ProviderNotFound, "no provider")
    if query.visit_type is None:
        shape = visit_types.default_shape(policy)
        return [(provider, shape) for provider in providers]
    offered = {
        row.provider_id: visit_types.shape_of(row)
        for row in await visit_types.of_providers(session, tenant_id, wanted, query.visit_type)
    }
    what = f"no visit type {query.visit_type!r} at provider"
    _check_all_found(wanted, list(offered), VisitTypeNotFound, what)
    if not offered:
        raise VisitTypeNotFound(f"no provider offers visit type {query.visit_type!r}")
    return [(provider, offered[provider.id]) for provider in providers if provider.id in offered]


def _check_all_found(
    wanted: Sequence[str] | None,
    found: Sequence[str],
    error: type[ProviderNotFound] | type[VisitTypeNotFound],
    what: str,
) -> None:
    missing = sorted(set(wanted or ()) - set(found))
    if missing:
        raise error(f"{what} {missing[0]!r}", missing=missing)


def _within_day_limit(
    slots: list[Slot], provider: ProviderView, taken: Sequence[Busy]
) -> list[Slot]:
    """Without the slots on local days already holding `max_per_day` active visits."""
    if provider.max_per_day is None:
        return slots
    zone = ZoneInfo(provider.tz)
    per_day: Counter[date] = Counter(utc_to_wall(b.slot_start, zone).date() for b in taken)
    full = {day for day, count in per_day.items() if count >= provider.max_per_day}
    return [s for s in slots if utc_to_wall(s.start, zone).date() not in full]


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
