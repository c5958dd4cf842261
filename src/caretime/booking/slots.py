"""Free slots: computed from availability minus active appointments minus the minimum notice,
never stored. A visit type makes each slot as long as its visit and needs its buffers free.
Ordered by (start, provider id) across providers, keyset-paginated."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from caretime.booking import visit_types
from caretime.booking.availability import effective_windows
from caretime.booking.bounds import Bound, bound_instant, span_in
from caretime.booking.errors import ProviderNotFound, RangeTooLong, VisitTypeNotFound
from caretime.booking.grid import Slot, VisitShape, free_slots
from caretime.booking.localtime import utc_to_wall
from caretime.booking.repository import MAX_OCCUPIED
from caretime.booking.slot_reads import Busy, ProviderView, Reach, SearchRows, read_search
from caretime.errors import InvalidInput
from caretime.tenancy.policy import BookingPolicy

MAX_RANGE = timedelta(days=31)
DAY = timedelta(days=1)
UTC_ZONE = ZoneInfo("UTC")
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
    found = await read_slot_search(await session.connection(), tenant_id, query, now=now)
    return slots_in(found, policy, query, now=now, limit=limit, after=after)


async def read_slot_search(
    on: AsyncConnection | AsyncEngine,
    tenant_id: str,
    query: SlotQuery,
    *,
    now: datetime,
    key_id: str | None = None,
) -> SearchRows:
    """What `slots_in` searches, in one statement (and the key's state with `key_id`)."""
    return await read_search(
        on,
        tenant_id,
        query.provider_ids,
        query.visit_type,
        _reach(query),
        now=now,
        key_id=key_id,
    )


def slots_in(
    found: SearchRows,
    policy: BookingPolicy,
    query: SlotQuery,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[Slot], tuple[datetime, str] | None]:
    """The query's free slots among what was read for it, a page of them and the position
    after it (None: the last page)."""
    searched = _searched(found, policy, query)
    spans = {p.id: span_in(query.start, query.end, ZoneInfo(p.tz)) for p, _ in searched}
    _check_spans(spans.values(), query.start, query.end)
    grid = timedelta(minutes=policy.slot_minutes)
    slots: list[Slot] = []
    for provider, shape in searched:
        zone, (begin, finish) = ZoneInfo(provider.tz), spans[provider.id]
        first_day, last_day = (utc_to_wall(t, zone).date() for t in (begin, finish))
        windows = effective_windows(found.rules.get(provider.id, []), zone, first_day, last_day)
        taken = found.busy.get(provider.id, [])
        occupied = [(b.occupied_start, b.occupied_end) for b in taken]
        earliest = max(begin, now + policy.min_notice)
        found_here = free_slots(
            provider.id, windows, occupied, grid=grid, shape=shape, start=earliest, end=finish
        )
        slots += _within_day_limit(found_here, provider, taken)
    slots.sort()
    return _page(slots, limit, after)


def _reach(query: SlotQuery) -> Reach:
    """What to read before the providers' zones are known: every provider's span lies within
    [low, high] whatever its zone (a date's local midnight is less than a day from its UTC
    midnight); rules one local date either side of those instants' dates; busy time MARGIN
    beyond where a per-day limit counts whole days, else MAX_OCCUPIED (a slot's occupied
    span reaches no further from its start). Capped at MAX_RANGE + 4 days: a wider reach
    is refused by check_range once the zones are known (each end moved out by at most two
    days), so it needs nothing read."""
    low = _utc(query.start) - (timedelta(0) if isinstance(query.start, datetime) else DAY)
    high = _utc(query.end, end=True) + (timedelta(0) if isinstance(query.end, datetime) else DAY)
    high = min(high, low + MAX_RANGE + 4 * DAY)
    first, last = low.date() - DAY, high.date() + DAY
    return Reach(first, last, low - MARGIN, high + MARGIN, low - MAX_OCCUPIED, high + MAX_OCCUPIED)


def _utc(bound: Bound, *, end: bool = False) -> datetime:
    return bound_instant(bound, UTC_ZONE, end=end).astimezone(UTC)


def _searched(
    found: SearchRows, policy: BookingPolicy, query: SlotQuery
) -> list[tuple[ProviderView, VisitShape]]:
    """Each searched provider with its visit shape; with a visit type, only those offering it."""
    wanted, providers = query.provider_ids, found.providers
    _check_all_found(wanted, [p.id for p in providers], ProviderNotFound, "no provider")
    if query.visit_type is None:
        shape = visit_types.default_shape(policy)
        return [(provider, shape) for provider in providers]
    offered = found.offered
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


def _check_spans(spans: Iterable[tuple[datetime, datetime]], start: Bound, end: Bound) -> None:
    """Each provider's span (the range in UTC when there is none) is a range one may search."""
    for begin, finish in list(spans) or [span_in(start, end, UTC_ZONE)]:
        check_range(begin, finish)


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
