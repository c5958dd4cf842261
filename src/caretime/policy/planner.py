"""The planner: fits a batch of calls into their contact windows under per-minute capacity.

Deterministic: the same items, policy, clock and existing load give the same schedule.
Time is counted in whole epoch minutes; a minute holds at most `max_calls_per_minute` calls,
spaced evenly across its seconds. Pinned times are placed first (they cannot move), then the
rest by strategy: `earliest` (first free minute) or `spread` (evenly across the windows needed).
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from caretime.policy.phones import PhoneBook, UndialableNumber, default_phone_book
from caretime.policy.windows import ContactWindows, contact_windows, explain_outside
from caretime.tenancy.policy import CallingPolicy, validate_zone

Strategy = Literal["earliest", "spread"]
WindowKey = tuple[tuple[str, ...], str | None]
MinuteSpan = tuple[int, int]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)


class PlanItem(NamedTuple):
    name: str
    phone: str
    scheduled: datetime | None = None
    tz: str | None = None
    # A number is planned once per purpose in one input, unless the item allows duplicates.
    purpose: str = ""
    allow_duplicate: bool = False


SCHEDULED: Literal["scheduled"] = "scheduled"


class Scheduled(NamedTuple):
    e164: str
    tz: str
    zones: tuple[str, ...]
    at: datetime
    pinned: bool
    status: Literal["scheduled"] = SCHEDULED


class Rejected(NamedTuple):
    """Why an item cannot be scheduled: a stable code (for summaries) and the words."""

    code: str
    error: str
    status: Literal["rejected"] = "rejected"
    # For a duplicate: the position (in the whole input) of the item it repeats.
    same_as: int | None = None


Outcome = Scheduled | Rejected


class _Target(NamedTuple):
    position: int
    e164: str
    zones: tuple[str, ...]
    tz: str
    key: WindowKey
    pinned: datetime | None


# Tuple constructors for the hot loops: a NamedTuple's own __new__ is a Python function, and
# a million calls to it cost a noticeable share of planning a large batch.
_new_target = functools.partial(tuple.__new__, _Target)
_new_scheduled = functools.partial(tuple.__new__, Scheduled)


@dataclass
class CapacityLedger:
    """Calls per epoch minute, existing ones included, so batches never overfill a minute."""

    per_minute: int
    counts: dict[int, int] = field(default_factory=dict)
    # Instants by epoch second, built once: take() runs once per planned call, and calls in
    # one second share the same instant.
    _instants: dict[int, datetime] = field(default_factory=dict, repr=False)

    @classmethod
    def starting_with(cls, per_minute: int, existing: Mapping[int, int]) -> CapacityLedger:
        return cls(per_minute, dict(existing))

    def is_free(self, minute: int) -> bool:
        return self.counts.get(minute, 0) < self.per_minute

    def take(self, minute: int) -> datetime:
        """Book a place in the minute; calls in one minute are spaced across its seconds."""
        slot = self.counts.get(minute, 0)
        self.counts[minute] = slot + 1
        second = minute * 60 + slot * 60 // self.per_minute
        instant = self._instants.get(second)
        if instant is None:
            instant = self._instants[second] = datetime.fromtimestamp(second, UTC)
        return instant


class Planner:
    def __init__(
        self,
        calling: CallingPolicy,
        *,
        now: datetime,
        ledger: CapacityLedger | None = None,
        strategy: Strategy | None = None,
        phones: PhoneBook = default_phone_book,
    ) -> None:
        self.calling = calling
        self.now = now
        self.horizon_end = now + timedelta(days=calling.horizon_days)
        self.ledger = ledger or CapacityLedger(calling.max_calls_per_minute)
        self.strategy: Strategy = strategy or calling.strategy
        self.phones = phones
        self._windows: dict[WindowKey, ContactWindows] = {}
        self._spans: dict[WindowKey, list[MinuteSpan]] = {}
        self._cursor: dict[WindowKey, tuple[int, int]] = {}
        self._full: set[WindowKey] = set()
        self._zone_names: dict[str, str | None] = {}
        # (number, purpose) planned by this planner: each appears once, even across plan()
        # calls, except for items that allow duplicates.
        self._seen: dict[tuple[str, str], int] = {}

    def plan(
        self,
        items: Sequence[PlanItem],
        *,
        start: int = 0,
        positions: Sequence[int] | None = None,
    ) -> list[Outcome]:
        """Plan items in order. A duplicate names the item it repeats by its position in the
        whole input: `positions[i]` for items[i] when given, else `start + i` (an input
        planned in chunks by one planner)."""
        with cyclic_gc_paused():
            return self._plan(items, positions or range(start, start + len(items)))

    def _plan(self, items: Sequence[PlanItem], positions: Sequence[int]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(items)
        targets = self._resolve_all(items, outcomes, positions)
        for target in targets:
            if target.pinned is not None:
                outcomes[target.position] = self._place_pinned(target)
        floating = [t for t in targets if t.pinned is None]
        if self.strategy == "spread":
            self._spread(floating, outcomes)
        else:
            self._place_all_earliest(floating, outcomes)
        return [outcome or Rejected("not_planned", "not planned") for outcome in outcomes]

    def windows_for(self, zones: tuple[str, ...], state: str | None) -> ContactWindows:
        key = (zones, state)
        found = self._windows.get(key)
        if found is None:
            found = contact_windows(
                zones, self.calling, start=self.now, end=self.horizon_end, state=state
            )
            self._windows[key] = found
            self._spans[key] = _minute_spans(found)
        return found

    # --- resolving numbers and zones -------------------------------------------------------

    def _resolve_all(
        self, items: Sequence[PlanItem], outcomes: list[Outcome | None], positions: Sequence[int]
    ) -> list[_Target]:
        # The hot loop of a big batch: the common case (a plain NANP number with a known
        # zone, no time or zone given) is resolved inline; anything else by _resolve.
        targets: list[_Target] = []
        seen, windows, lookup = self._seen, self._windows, self.phones.lookup
        for index, item in enumerate(items):
            _, phone, scheduled, tz, purpose, allow_duplicate = item
            found = None
            if tz is None and scheduled is None:
                try:
                    found = lookup(phone)
                except UndialableNumber as exc:
                    outcomes[index] = Rejected("invalid_phone", str(exc))
                    continue
            if found is not None and found[1].zones:
                e164, facts = found
                key = facts.window_key
                if key not in windows:
                    self.windows_for(*key)
                target = _new_target((index, e164, facts.zones, facts.display_zone, key, None))
            else:
                resolved = self._resolve(index, item)
                if isinstance(resolved, Rejected):
                    outcomes[index] = resolved
                    continue
                target, e164 = resolved, resolved.e164
            first = None if allow_duplicate else seen.get((e164, purpose))
            if first is None:
                if not allow_duplicate:
                    seen[(e164, purpose)] = positions[index]
                targets.append(target)
            else:
                outcomes[index] = _duplicate_in_input(first, purpose)
        return targets

    def _resolve(self, index: int, item: PlanItem) -> _Target | Rejected:
        try:
            phone = self.phones.parse(item.phone)
        except UndialableNumber as exc:
            return Rejected("invalid_phone", str(exc))
        zones = phone.zones
        if item.tz is not None:
            zone = self._valid_zone(item.tz)
            if zone is None:
                return Rejected("unknown_tz", f"unknown time zone {item.tz!r}: give an IANA name")
            zones = (zone,)
        elif not zones and self.calling.default_tz is not None:
            zones = (self.calling.default_tz,)
        if not zones:
            return Rejected("no_tz", _unknown_zone_reason(phone.non_geographic))
        key = (zones, phone.state)
        if key not in self._windows:
            self.windows_for(*key)
        pinned = _pinned_instant(item.scheduled, zones)
        if isinstance(pinned, Rejected):
            return pinned
        tz = phone.display_zone if zones == phone.zones and phone.display_zone else zones[0]
        return _Target(index, phone.e164, zones, tz, key, pinned)

    def _valid_zone(self, name: str) -> str | None:
        if name not in self._zone_names:
            try:
                self._zone_names[name] = validate_zone(name)
            except ValueError:
                self._zone_names[name] = None
        return self._zone_names[name]

    # --- placing ----------------------------------------------------------------------------

    def _place_pinned(self, target: _Target) -> Outcome:
        at = target.pinned
        assert at is not None
        if at < self.now:
            return Rejected("in_the_past", f"scheduled time {_z(at)} is in the past")
        if at >= self.horizon_end:
            days = self.calling.horizon_days
            return Rejected(
                "beyond_horizon",
                f"scheduled time {_z(at)} is beyond the {days}-day planning horizon",
            )
        if not self._windows[target.key].contains(at):
            state = target.key[1]
            reason = explain_outside(at, target.zones, self.calling, state)
            return Rejected("outside_window", f"scheduled time {_z(at)} is not allowed: {reason}")
        minute = int(at.timestamp()) // 60
        if not self.ledger.is_free(minute):
            cap = self.ledger.per_minute
            return Rejected(
                "minute_full", f"the minute of {_z(at)} is full ({cap} calls per minute)"
            )
        self.ledger.take(minute)
        return Scheduled(target.e164, target.tz, target.zones, at, pinned=True)

    def _place_all_earliest(
        self, floating: Sequence[_Target], outcomes: list[Outcome | None]
    ) -> None:
        counts, cap, take, cursor = (
            self.ledger.counts, self.ledger.per_minute, self.ledger.take, self._cursor)  # fmt: skip
        for position, e164, zones, tz, key, _ in floating:
            where = cursor.get(key)
            if where is not None and counts.get(where[1], 0) < cap:
                minute: int | None = where[1]  # the usual case: the last minute has room
            else:
                minute = self._first_free_minute(key)
            if minute is None:
                outcomes[position] = self._overflow(key)
                continue
            outcomes[position] = _new_scheduled((e164, tz, zones, take(minute), False, SCHEDULED))

    def _first_free_minute(self, key: WindowKey) -> int | None:
        # Minutes only ever fill up, so a number's search resumes where the last one stopped.
        if key in self._full:
            return None
        spans = self._spans[key]
        index, minute = self._cursor.get(key, (0, spans[0][0] if spans else 0))
        counts, cap = self.ledger.counts, self.ledger.per_minute
        while index < len(spans):
            low, high = spans[index]
            minute = max(minute, low)
            while minute < high:
                if counts.get(minute, 0) < cap:
                    self._cursor[key] = (index, minute)
                    return minute
                minute += 1
            index += 1
        # Full to the horizon: no cursor (it must only ever point inside a window).
        self._cursor.pop(key, None)
        self._full.add(key)
        return None

    def _spread(self, floating: Sequence[_Target], outcomes: list[Outcome | None]) -> None:
        groups: dict[WindowKey, list[_Target]] = {}
        for target in floating:
            groups.setdefault(target.key, []).append(target)
        for key, group in groups.items():
            minutes = self._minutes_to_spread_over(key, len(group))
            for position, target in enumerate(group):
                minute = _free_minute_near(
                    minutes, position * len(minutes) // len(group), self.ledger
                )
                outcomes[target.position] = (
                    self._overflow(key) if minute is None else self._scheduled(target, minute)
                )

    def _minutes_to_spread_over(self, key: WindowKey, wanted: int) -> list[int]:
        """The allowed minutes of the first windows that together have room for `wanted`."""
        minutes: list[int] = []
        room = 0
        for low, high in self._spans[key]:
            minutes.extend(range(low, high))
            room += sum(max(0, self.ledger.per_minute - self.ledger.counts.get(m, 0))
                        for m in range(low, high))  # fmt: skip
            if room >= wanted:
                break
        return minutes

    def _scheduled(self, target: _Target, minute: int) -> Scheduled:
        return Scheduled(target.e164, target.tz, target.zones, self.ledger.take(minute), False)

    def _overflow(self, key: WindowKey) -> Rejected:
        days = self.calling.horizon_days
        if not self._spans[key]:
            rules = "; ".join(self._windows[key].rules)
            return Rejected(
                "no_window", f"no allowed calling time in the next {days} days ({rules})"
            )
        cap = self.ledger.per_minute
        return Rejected(
            "capacity_full",
            f"no free calling time in the next {days} days: the allowed windows are full "
            f"at {cap} calls per minute",
        )


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Planning allocates a few small tuples per item and makes no reference cycles, so the
    cycle collector has nothing to find, yet its passes over a growing heap took a third of
    the time of a large batch. (Nested pauses, and pauses of concurrent requests, leave it
    enabled once the outermost that found it enabled ends.)"""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _free_minute_near(minutes: Sequence[int], start: int, ledger: CapacityLedger) -> int | None:
    for offset in range(len(minutes)):
        minute = minutes[(start + offset) % len(minutes)]
        if ledger.is_free(minute):
            return minute
    return None


def _minute_spans(windows: ContactWindows) -> list[MinuteSpan]:
    """Each interval as the whole epoch minutes inside it (exact: no float rounding)."""
    spans = []
    for start, end in windows.intervals:
        low = -((_EPOCH - start) // _MINUTE)  # ceiling: a partial first minute is not usable
        high = (end - _EPOCH) // _MINUTE
        if low < high:
            spans.append((low, high))
    return spans


def _pinned_instant(
    scheduled: datetime | None, zones: tuple[str, ...]
) -> datetime | Rejected | None:
    """An aware time is an instant; a naive one is local time, if the zone is unambiguous."""
    if scheduled is None or scheduled.tzinfo is not None:
        return None if scheduled is None else scheduled.astimezone(UTC)
    if len(zones) > 1:
        return Rejected(
            "ambiguous_time",
            "scheduled time has no UTC offset and the number spans several time zones: "
            'give an offset or "tz"',
        )
    return scheduled.replace(tzinfo=ZoneInfo(zones[0])).astimezone(UTC)


def _duplicate_in_input(first: int, purpose: str) -> Rejected:
    for_purpose = f' for "{purpose}"' if purpose else ""
    return Rejected(
        "duplicate",
        f"the same number is already in this batch{for_purpose} at item {first} "
        '(send "allow_duplicate": true to call it twice)',
        same_as=first,
    )


def _unknown_zone_reason(non_geographic: bool) -> str:
    kind = "a toll-free or non-geographic number" if non_geographic else "a number"
    return (
        f'{kind} whose time zone is unknown: give "tz" in the item or set the tenant\'s '
        "calling.default_tz"
    )


def _z(at: datetime) -> str:
    # To the second: "now" carries microseconds nobody wants to read in an error.
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
