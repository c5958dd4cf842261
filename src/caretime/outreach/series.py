"""Recurring calls: a series per RRULE, read in the recipient's local time, with at most one
live occurrence at a time. Each occurrence is planned through the same planner and written
through the same path (`write_calls`) as any call; the next is planned when the previous one
ends (`series_jobs`), never beyond the horizon: an occurrence further ahead waits for a timer.
The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.events import emit, emit_many
from caretime.ids import new_id, new_ids
from caretime.messaging.consent import opt_outs
from caretime.outreach.content import CallContent
from caretime.outreach.models import CallSeries
from caretime.outreach.recurrence import (
    Exhausted,
    Placed,
    Recurrence,
    Waiting,
    format_local,
    parse_local,
    place_next,
    start_wall,
)
from caretime.outreach.screening import opted_out_reason
from caretime.outreach.series_jobs import series_next_job
from caretime.outreach.writing import NewCall, contact_id, minute_ledger, write_calls
from caretime.policy import CapacityLedger, PlanItem, Rejected, Scheduled, UndialableNumber
from caretime.policy.phones import default_phone_book
from caretime.tenancy.policy import CallingPolicy, validate_zone

ACTIVE, FINISHED, CANCELLED = "active", "finished", "cancelled"
NO_MORE = "the rule has no more occurrences"
NO_FREE_TIME = "no allowed, free time before the next occurrence"
NOTHING_PLACEABLE = (
    "no occurrence of the recurrence can be placed: there is no allowed, free calling time "
    "before each next occurrence"
)


@dataclass(frozen=True)
class SeriesSpec:
    """What a caller asks for: one call's fields and a checked rule (recurrence.checked_rule)."""

    name: str
    phone: str
    scheduled: datetime | None
    tz: str | None
    content: CallContent
    rule: str
    allow_duplicate: bool = False
    max_attempts: int | None = None
    retry_delay_seconds: int | None = None


class Started(NamedTuple):
    """A new series and its first occurrence: the call written now, or None while the first
    occurrence is beyond the horizon."""

    series: CallSeries
    call_id: str | None
    planned: Scheduled | None


class Advanced(NamedTuple):
    """What planning a series' next occurrence did (and the call's place, when planned)."""

    kind: Literal["planned", "waiting", "finished", "duplicate"]
    planned: Scheduled | None = None


WAITING, FINISHED_NOW, DUPLICATE = Advanced("waiting"), Advanced("finished"), Advanced("duplicate")


class Begun(NamedTuple):
    """A series not written yet and where its first occurrence goes."""

    series: CallSeries
    # The tenant's policy with the series' own attempts and retry delay.
    calling: CallingPolicy
    placement: Placed | Waiting


async def start_series(
    session: AsyncSession,
    tenant_id: str,
    calling: CallingPolicy,
    spec: SeriesSpec,
    *,
    now: datetime,
    ledger: CapacityLedger | None = None,
    batch_id: str | None = None,
) -> Started | Rejected:
    """Create the series and plan its first occurrence (screened for opt-outs and live
    duplicates by the caller). A rule with no occurrence from its start is a rejection."""
    if ledger is None:
        ledger = await minute_ledger(session, tenant_id, calling, now=now)
    begun = begin_series(tenant_id, calling, spec, now=now, ledger=ledger, batch_id=batch_id)
    if isinstance(begun, Rejected):
        return begun
    (started,) = await write_series(session, tenant_id, [begun], batch_id=batch_id, now=now)
    return started


def begin_series(
    tenant_id: str,
    calling: CallingPolicy,
    spec: SeriesSpec,
    *,
    now: datetime,
    ledger: CapacityLedger,
    batch_id: str | None = None,
) -> Begun | Rejected:
    """The series and its first occurrence's place, booked on `ledger`: nothing written."""
    where = where_and_zone(spec, calling)
    if isinstance(where, Rejected):
        return where
    e164, zone = where
    recurrence = Recurrence(
        spec.rule, start_wall(spec.scheduled, ZoneInfo(zone), now), ZoneInfo(zone)
    )
    first = recurrence.first_from(now)
    if first is None:
        return Rejected("no_occurrence", "the recurrence has no occurrence from now on")
    series = _new_series(tenant_id, spec, e164, zone, recurrence, first, batch_id, now)
    calling = series_policy(calling, series)
    placement = place_next(recurrence, first, _plan_item(series), calling, ledger, now=now)
    if isinstance(placement, Exhausted):
        return Rejected("no_window", NOTHING_PLACEABLE)
    return Begun(series, calling, placement)


async def write_series(
    session: AsyncSession,
    tenant_id: str,
    begun: Sequence[Begun],
    *,
    batch_id: str | None,
    now: datetime,
) -> list[Started | Rejected]:
    """Write series begun together (a batch's recurring items) in a few statements however
    many: their first calls in one write (per policy), then the series rows, their wake-ups
    and their events. The calls go first, so that a series whose call the database refused
    (another live call for the number and purpose, the partial unique index's say) is
    never written: it is a rejection in its place."""
    call_ids = await _write_first_calls(session, tenant_id, begun, batch_id, now)
    results: list[Started | Rejected] = []
    kept: list[Begun] = []
    for one, call_id in zip(begun, call_ids, strict=True):
        if isinstance(one.placement, Placed) and call_id is None:
            results.append(Rejected("already_scheduled", ""))
            continue
        if isinstance(one.placement, Placed):
            assert call_id is not None
            _record_planned(one.series, one.placement, call_id, now)
        else:
            _set_waiting(one.series, one.placement, now)
        kept.append(one)
        planned = one.placement.planned if isinstance(one.placement, Placed) else None
        results.append(Started(one.series, call_id, planned))
    await _add_series(session, tenant_id, kept, now=now)
    return results


async def _write_first_calls(
    session: AsyncSession,
    tenant_id: str,
    begun: Sequence[Begun],
    batch_id: str | None,
    now: datetime,
) -> list[str | None]:
    """Each placed series' first call, through the path every call is written by (one write
    per distinct attempts policy: usually one). The id written, or None (not placed yet, or
    refused by the database)."""
    ids: list[str | None] = [None] * len(begun)
    by_policy: dict[tuple[int, timedelta], list[tuple[int, NewCall]]] = {}
    call_ids = iter(new_ids("call", len(begun)))
    for i, one in enumerate(begun):
        if isinstance(one.placement, Placed):
            call = _occurrence_call(next(call_ids), one.series, one.placement)
            key = (one.calling.max_attempts, one.calling.retry_delay)
            by_policy.setdefault(key, []).append((i, call))
    for group in by_policy.values():
        calling = begun[group[0][0]].calling
        calls = [call for _, call in group]
        written = await write_calls(session, tenant_id, calling, calls, batch_id=batch_id, now=now)
        for i, call in group:
            ids[i] = call.id if call.id in written else None
    return ids


async def _add_series(
    session: AsyncSession, tenant_id: str, kept: Sequence[Begun], *, now: datetime
) -> None:
    """The series rows, the wake-ups of those waiting for their first occurrence, and each
    one's `call_series.created` (then `occurrence_skipped` for those whose placing passed
    over occurrences), one statement each."""
    if not kept:
        return
    session.add_all([one.series for one in kept])
    wake_ups = [
        _wake_up(one.series, one.placement.wake_at)
        for one in kept
        if isinstance(one.placement, Waiting)
    ]
    await enqueue_many(session, wake_ups)
    await session.flush()
    await emit_changes(session, tenant_id, [one.series for one in kept], "call_series.created",
                       now=now)  # fmt: skip
    skipping = [one for one in kept if one.placement.skipped]
    for one in skipping:
        one.series.skipped += one.placement.skipped
    extras = [{"skipped": one.placement.skipped, "reason": NO_FREE_TIME} for one in skipping]
    await emit_changes(session, tenant_id, [one.series for one in skipping],
                       "call_series.occurrence_skipped", now=now, extras=extras)  # fmt: skip


def where_and_zone(spec: SeriesSpec, calling: CallingPolicy) -> tuple[str, str] | Rejected:
    """The number in E.164 and the zone its rule is read in: the caller's `tz`, else the
    number's reported zone (for a number spanning zones, the one most of its prefix is in;
    planning still needs every zone to allow the moment)."""
    try:
        phone = default_phone_book.parse(spec.phone)
    except UndialableNumber as exc:
        return Rejected("invalid_phone", str(exc))
    if spec.tz is not None:
        try:
            return phone.e164, validate_zone(spec.tz)
        except ValueError:
            return Rejected("unknown_tz", f"unknown time zone {spec.tz[:64]!r}: give an IANA name")
    zone = phone.display_zone or (phone.zones[0] if phone.zones else calling.default_tz)
    if zone is None:
        return Rejected("no_tz", 'the number\'s time zone is unknown: give "tz"')
    return phone.e164, zone


def _new_series(
    tenant_id: str,
    spec: SeriesSpec,
    e164: str,
    zone: str,
    recurrence: Recurrence,
    first: datetime,
    batch_id: str | None,
    now: datetime,
) -> CallSeries:
    content = spec.content
    return CallSeries(
        id=new_id("ser"), tenant_id=tenant_id, batch_id=batch_id,
        contact_id=contact_id(tenant_id, e164),
        name=spec.name, phone_e164=e164, tz=zone, given_tz=spec.tz, purpose=content.purpose,
        allow_duplicate=spec.allow_duplicate, script=content.script, variables=content.variables,
        max_attempts=spec.max_attempts, retry_delay_seconds=spec.retry_delay_seconds,
        rule=spec.rule, dtstart=format_local(recurrence.dtstart), next_local=format_local(first),
        next_at=recurrence.instant(first), current_call_id=None, occurrences=0, skipped=0,
        status=ACTIVE, ended_reason=None, created_at=now, updated_at=now,
    )  # fmt: skip


async def advance(
    session: AsyncSession,
    series: CallSeries,
    calling: CallingPolicy,
    *,
    now: datetime,
    ledger: CapacityLedger | None = None,
    batch_id: str | None = None,
) -> Advanced:
    """Plan the series' next occurrence (it has no live one): write its call, or set a timer
    for when it comes inside the horizon, or finish the series (no more occurrences, or the
    number opted out of calls)."""
    if await _stopped_by_opt_out(session, series, now=now):
        return FINISHED_NOW
    if series.next_local is None:
        await finish(session, series, NO_MORE, now=now)
        return FINISHED_NOW
    calling = series_policy(calling, series)
    if ledger is None:
        ledger = await minute_ledger(session, series.tenant_id, calling, now=now)
    placement = place_next(
        recurrence_of(series), parse_local(series.next_local), _plan_item(series), calling,
        ledger, now=now,
    )  # fmt: skip
    await _count_skipped(session, series, placement.skipped, now=now)
    if isinstance(placement, Exhausted):
        series.next_local = series.next_at = None
        await finish(session, series, NO_MORE, now=now)
        return FINISHED_NOW
    if isinstance(placement, Waiting):
        await _wait(session, series, placement, now=now)
        return WAITING
    return await _write_occurrence(session, series, calling, placement, batch_id, now)


async def _stopped_by_opt_out(session: AsyncSession, series: CallSeries, *, now: datetime) -> bool:
    number = series.phone_e164
    opted_out = (await opt_outs(session, series.tenant_id, [number], "voice")).get(number)
    if opted_out is None:
        return False
    await finish(session, series, f"stopped: {opted_out_reason(opted_out)}", now=now)
    return True


async def _write_occurrence(
    session: AsyncSession,
    series: CallSeries,
    calling: CallingPolicy,
    placement: Placed,
    batch_id: str | None,
    now: datetime,
) -> Advanced:
    # The occurrence tried (placement may have passed over earlier ones): if the write is
    # refused, skip_current passes over this one.
    series.next_local = format_local(placement.wall)
    call_id = await _write_call(session, series, calling, placement, batch_id, now)
    if call_id is None:
        return DUPLICATE
    _record_planned(series, placement, call_id, now)
    await session.flush()
    return Advanced("planned", placement.planned)


async def _write_call(
    session: AsyncSession,
    series: CallSeries,
    calling: CallingPolicy,
    placement: Placed,
    batch_id: str | None,
    now: datetime,
) -> str | None:
    """The occurrence's call, through the path every call is written by; None when the
    database refused it (another live call for the number and purpose)."""
    new_call = _occurrence_call(new_id("call"), series, placement)
    written = await write_calls(
        session, series.tenant_id, calling, [new_call], batch_id=batch_id, now=now
    )
    return new_call.id if new_call.id in written else None


def _occurrence_call(call_id: str, series: CallSeries, placement: Placed) -> NewCall:
    content = CallContent(series.purpose, series.script, series.variables)
    return NewCall(
        call_id, series.name, placement.planned, content, series.allow_duplicate, series.id
    )


def _record_planned(series: CallSeries, placement: Placed, call_id: str, now: datetime) -> None:
    following = placement.following
    series.current_call_id = call_id
    series.occurrences += 1
    series.next_local = None if following is None else format_local(following)
    series.next_at = None if following is None else recurrence_of(series).instant(following)
    series.updated_at = now


async def _wait(
    session: AsyncSession, series: CallSeries, placement: Waiting, *, now: datetime
) -> None:
    _set_waiting(series, placement, now)
    job = _wake_up(series, placement.wake_at)
    await enqueue_many(session, [job])
    await session.flush()


def _set_waiting(series: CallSeries, placement: Waiting, now: datetime) -> None:
    series.next_local = format_local(placement.wall)
    series.next_at = recurrence_of(series).instant(placement.wall)
    series.current_call_id = None
    series.updated_at = now


async def skip_current(
    session: AsyncSession, series: CallSeries, why: str, *, now: datetime
) -> None:
    """Pass over the series' next occurrence (the number has another live call for the
    purpose) and look again when the one after it is due."""
    assert series.next_local is not None
    recurrence = recurrence_of(series)
    following = recurrence.after(parse_local(series.next_local))
    series.skipped += 1
    await emit_change(session, series, "call_series.occurrence_skipped", now=now,
                extra={"skipped": 1, "reason": why})  # fmt: skip
    if following is None:
        series.next_local = series.next_at = None
        await finish(session, series, NO_MORE, now=now)
        return
    series.next_local = format_local(following)
    series.next_at = recurrence.instant(following)
    series.updated_at = now
    job = _wake_up(series, series.next_at)
    await enqueue_many(session, [job])


def _wake_up(series: CallSeries, at: datetime) -> NewJob:
    # Keyed by the moment too: a wake-up that sets the next one for the same occurrence
    # (always later) must not be taken for a repeat of itself while it runs.
    reason = f"wait:{series.next_local}:{int(at.timestamp())}"
    return series_next_job(series.tenant_id, series.id, at=at, reason=reason)


async def finish(session: AsyncSession, series: CallSeries, why: str, *, now: datetime) -> None:
    series.status, series.ended_reason = FINISHED, why
    series.next_local = series.next_at = None
    series.current_call_id = None
    series.updated_at = now
    await session.flush()
    await emit_change(session, series, "call_series.finished", now=now)


async def _count_skipped(
    session: AsyncSession, series: CallSeries, skipped: int, *, now: datetime
) -> None:
    if not skipped:
        return
    series.skipped += skipped
    await emit_change(session, series, "call_series.occurrence_skipped", now=now,
                extra={"skipped": skipped, "reason": NO_FREE_TIME})  # fmt: skip


def series_policy(calling: CallingPolicy, series: CallSeries) -> CallingPolicy:
    """The tenant's policy with the series' own max_attempts and retry delay."""
    overrides: dict[str, Any] = {}
    if series.max_attempts is not None:
        overrides["max_attempts"] = series.max_attempts
    if series.retry_delay_seconds is not None:
        overrides["retry_delay"] = timedelta(seconds=series.retry_delay_seconds)
    return calling.model_copy(update=overrides) if overrides else calling


def recurrence_of(series: CallSeries) -> Recurrence:
    zone = ZoneInfo(series.tz)
    return Recurrence(series.rule, parse_local(series.dtstart), zone)


def _plan_item(series: CallSeries) -> PlanItem:
    return PlanItem(
        series.name, series.phone_e164, None, series.given_tz, series.purpose,
        series.allow_duplicate,
    )  # fmt: skip


def series_data(series: CallSeries) -> dict[str, Any]:
    """The PHI-minimal snapshot events carry (ids, rule, times; no name or number)."""
    return {
        "id": series.id,
        "status": series.status,
        "rule": series.rule,
        "tz": series.tz,
        "next_occurrence": None if series.next_at is None else isoformat_z(series.next_at),
        "current_call_id": series.current_call_id,
        "occurrences": series.occurrences,
        "skipped": series.skipped,
        "ended_reason": series.ended_reason,
    }


async def emit_change(
    session: AsyncSession,
    series: CallSeries,
    kind: str,
    *,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    data = {**series_data(series), **(extra or {})}
    await emit(session, tenant_id=series.tenant_id, type=kind, subject=("call_series", series.id),
               data=data, now=now)  # fmt: skip


async def emit_changes(
    session: AsyncSession,
    tenant_id: str,
    many: Sequence[CallSeries],
    kind: str,
    *,
    now: datetime,
    extras: Sequence[dict[str, Any]] | None = None,
) -> None:
    """`emit_change` for many series at once, in one statement."""
    data = [series_data(series) for series in many]
    if extras is not None:
        data = [{**snapshot, **extra} for snapshot, extra in zip(data, extras, strict=True)]
    await emit_many(session, tenant_id=tenant_id, type=kind,
                    subjects=("call_series", [series.id for series in many]), data=data,
                    now=now)  # fmt: skip
