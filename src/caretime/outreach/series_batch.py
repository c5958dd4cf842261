"""Batch items with `recurrence` (in /schedule, JSON and CSV batches): each starts a series
whose first occurrence is planned against the batch's own capacity ledger, after the
batch's other items, and written through the same path as every call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.outreach.intake import Intake, ParsedItem
from caretime.outreach.recurrence import Placed, Recurrence, Waiting, place_next, start_wall
from caretime.outreach.series import (
    Begun,
    SeriesSpec,
    Started,
    begin_series,
    where_and_zone,
    write_series,
)
from caretime.policy import CapacityLedger, Outcome, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

# Stands in for a recurring item while the batch's other items are planned.
_PLANNED_APART = Rejected("recurring", "planned as a series")


@dataclass(frozen=True)
class SeriesItem:
    """How a recurring item fared: its series (None for a dry run), its first call, and the
    nominal moment of the occurrence it waits for when that is beyond the horizon."""

    series_id: str | None
    call_id: str | None
    waiting_for: datetime | None
    e164: str
    tz: str


def recurring_positions(items: Sequence[Intake]) -> list[int]:
    return [i for i, item in enumerate(items) if isinstance(item, ParsedItem) and item.recurrence]


def set_apart(items: Sequence[Intake], positions: Sequence[int]) -> list[Intake]:
    """The items for the batch planner: recurring ones are planned by their series."""
    apart = set(positions)
    return [_PLANNED_APART if i in apart else item for i, item in enumerate(items)]


def _spec(item: ParsedItem) -> SeriesSpec:
    assert item.recurrence is not None
    plan = item.plan
    return SeriesSpec(
        plan.name, plan.phone, plan.scheduled, plan.tz, item.content, item.recurrence,
        plan.allow_duplicate,
    )  # fmt: skip


async def start_all(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    items: Sequence[Intake],
    positions: Sequence[int],
    ledger: CapacityLedger,
    *,
    batch_id: str,
    now: datetime,
) -> tuple[dict[int, Outcome], dict[int, SeriesItem]]:
    """Start a series per recurring item: each one's outcome for the batch's summary, and
    what the caller is told about it. Each first occurrence is placed in item order against
    the batch's ledger (as one at a time would), then all are written together."""
    outcomes: dict[int, Outcome] = {}
    begun: dict[int, Begun] = {}
    for i in positions:
        one = begin_series(
            tenant_id, calling, _spec(_parsed(items[i])), now=now, ledger=ledger,
            batch_id=batch_id,
        )  # fmt: skip
        if isinstance(one, Rejected):
            outcomes[i] = one
        else:
            begun[i] = one
    results = await write_series(session, tenant_id, list(begun.values()), batch_id=batch_id,
                                 now=now)  # fmt: skip
    started: dict[int, SeriesItem] = {}
    for i, result in zip(begun, results, strict=True):
        outcomes[i], found = _fared(result, _parsed(items[i]))
        if found is not None:
            started[i] = found
    return outcomes, started


def _parsed(item: Intake) -> ParsedItem:
    assert isinstance(item, ParsedItem)
    return item


def _fared(result: Started | Rejected, item: ParsedItem) -> tuple[Outcome, SeriesItem | None]:
    if isinstance(result, Rejected):
        if result.code == "already_scheduled":
            purpose = f' for "{item.plan.purpose}"' if item.plan.purpose else ""
            return Rejected(result.code, f"this number already has a live call{purpose}"), None
        return result, None
    series = result.series
    if result.planned is not None:
        found = SeriesItem(series.id, result.call_id, None, series.phone_e164, series.tz)
        return result.planned, found
    assert series.next_at is not None
    found = SeriesItem(series.id, None, series.next_at, series.phone_e164, series.tz)
    return _waiting_outcome(found), found


def preview_all(
    calling: CallingPolicy,
    items: Sequence[Intake],
    positions: Sequence[int],
    ledger: CapacityLedger,
    *,
    now: datetime,
) -> tuple[dict[int, Outcome], dict[int, SeriesItem]]:
    """A dry run: where each recurring item's first occurrence would go; nothing written."""
    outcomes: dict[int, Outcome] = {}
    previews: dict[int, SeriesItem] = {}
    for i in positions:
        item = items[i]
        assert isinstance(item, ParsedItem)
        outcomes[i], found = _preview(calling, _spec(item), item, ledger, now)
        if found is not None:
            previews[i] = found
    return outcomes, previews


def _preview(
    calling: CallingPolicy,
    spec: SeriesSpec,
    item: ParsedItem,
    ledger: CapacityLedger,
    now: datetime,
) -> tuple[Outcome, SeriesItem | None]:
    where = where_and_zone(spec, calling)
    if isinstance(where, Rejected):
        return where, None
    e164, zone = where
    recurrence = Recurrence(
        spec.rule, start_wall(spec.scheduled, ZoneInfo(zone), now), ZoneInfo(zone)
    )
    plan = item.plan._replace(scheduled=None, phone=e164)
    placement = place_next(recurrence, recurrence.first_from(now), plan, calling, ledger, now=now)
    if isinstance(placement, Placed):
        return placement.planned, SeriesItem(None, None, None, e164, zone)
    if isinstance(placement, Waiting):
        found = SeriesItem(None, None, recurrence.instant(placement.wall), e164, zone)
        return _waiting_outcome(found), found
    return Rejected("no_occurrence", "the recurrence has no occurrence that can be planned"), None


def _waiting_outcome(found: SeriesItem) -> Scheduled:
    # Counted as scheduled in the batch's summary; answered as "waiting" (see answer_items).
    assert found.waiting_for is not None
    return Scheduled(found.e164, found.tz, (found.tz,), found.waiting_for, pinned=False)


def answer_items(entries: list[dict[str, Any]], found: dict[int, SeriesItem]) -> None:
    """Complete the answers of recurring items: the series id, and for one whose first
    occurrence is beyond the horizon, status "waiting" with that occurrence's moment."""
    for i, series in found.items():
        entry = entries[i]
        if entry.get("status") != "scheduled":
            continue
        entry["series_id"] = series.series_id
        if series.waiting_for is not None:
            entry.pop("scheduled", None)
            entry.update(status="waiting", next_occurrence=isoformat_z(series.waiting_for),
                         scheduled_task_id=None)  # fmt: skip
