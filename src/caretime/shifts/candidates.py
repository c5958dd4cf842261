"""Why (not) offered: every caregiver holding the shift's role, and for each whether the
fan-out reaches them and, if not, every reason why. Read-only; the same rules as
`qualify.py` and the quiet hours of `quiet.py`, asked per caregiver so nothing is hidden."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging.consent import opted_out_numbers
from caretime.policy.quiet import QuietHours
from caretime.shifts import ladder as ladders
from caretime.shifts.models import Caregiver, CaregiverRole, Offer, Shift, ShiftEvent
from caretime.shifts.overtime import over_weekly_hours
from caretime.shifts.quiet import caregiver_zones, offer_timing
from caretime.shifts.repository import FanOutRepository
from caretime.shifts.schemas import Candidate, CandidateList
from caretime.shifts.service import require_shift
from caretime.tenancy.policy import ShiftPolicy

# Reasons that keep a caregiver from every round, whatever its channel.
_BLOCKING = ("inactive", "declined", "dropped this shift", "overlapping shift", "over weekly")


async def list_candidates(
    session: AsyncSession, tenant_id: str, shift_id: str, *, policy: ShiftPolicy, now: datetime
) -> CandidateList:
    shift = await require_shift(session, tenant_id, shift_id)
    rows = await _holders_of_role(session, shift)
    channels = await _channels(session, shift, policy)
    facts = await _Facts.load(session, shift, rows, channels)
    facts.over_hours = await over_weekly_hours(session, shift, policy)
    facts.first_tiers = await _first_round_tiers(session, shift, policy)
    items = [_candidate(shift, row, facts, channels, policy, now) for row in rows]
    reachable = sum(item.state in ("offered", "eligible") for item in items)
    return CandidateList(
        shift_id=shift.id, status=shift.status, channels=channels, reachable=reachable, items=items
    )


async def _holders_of_role(session: AsyncSession, shift: Shift) -> Sequence[Any]:
    statement = (
        select(
            Caregiver.id,
            Caregiver.name,
            Caregiver.phone,
            Caregiver.tz,
            Caregiver.active,
            Caregiver.tier,
        )
        .join(
            CaregiverRole,
            and_(
                CaregiverRole.tenant_id == Caregiver.tenant_id,
                CaregiverRole.caregiver_id == Caregiver.id,
            ),
        )
        .where(Caregiver.tenant_id == shift.tenant_id, CaregiverRole.role == shift.role_required)
        .order_by(Caregiver.id)
    )
    return (await session.execute(statement)).all()


async def _first_round_tiers(
    session: AsyncSession, shift: Shift, policy: ShiftPolicy
) -> tuple[int, ...] | None:
    fanout = await FanOutRepository(session, shift.tenant_id).for_shift(shift.id)
    rounds = (
        ladders.from_document(fanout.ladder) if fanout else ladders.rounds_of(policy.escalation)
    )
    return rounds[0].tiers


async def _channels(session: AsyncSession, shift: Shift, policy: ShiftPolicy) -> list[str]:
    """The channels of the running fan-out's ladder, else of the tenant's."""
    fanout = await FanOutRepository(session, shift.tenant_id).for_shift(shift.id)
    rounds = (
        ladders.from_document(fanout.ladder) if fanout else ladders.rounds_of(policy.escalation)
    )
    return list(dict.fromkeys(r.channel for r in rounds))


class _Facts:
    """What the shift's tables say about these caregivers, read in a few queries."""

    def __init__(self) -> None:
        self.declined: set[str] = set()
        self.dropped: set[str] = set()
        self.overlaps: dict[str, list[str]] = defaultdict(list)
        self.opted_out: set[tuple[str, str]] = set()
        self.offers: dict[str, Offer] = {}
        self.generation = 0
        self.over_hours: set[str] = set()
        self.first_tiers: tuple[int, ...] | None = None

    @classmethod
    async def load(
        cls, session: AsyncSession, shift: Shift, rows: Sequence[Any], channels: list[str]
    ) -> _Facts:
        facts = cls()
        fanout = await FanOutRepository(session, shift.tenant_id).for_shift(shift.id)
        facts.generation = fanout.generation if fanout else 0
        await facts._read_offers(session, shift)
        await facts._read_drops_and_overlaps(session, shift)
        wanted = {(row.phone, channel) for row in rows for channel in channels}
        facts.opted_out = await opted_out_numbers(session, shift.tenant_id, wanted)
        return facts

    async def _read_offers(self, session: AsyncSession, shift: Shift) -> None:
        offers = await session.scalars(
            select(Offer)
            .where(Offer.tenant_id == shift.tenant_id, Offer.shift_id == shift.id)
            .order_by(Offer.generation, Offer.round)
        )
        for offer in offers:
            if offer.reply_intent == "decline":
                self.declined.add(offer.caregiver_id)
            if offer.generation == self.generation:
                self.offers[offer.caregiver_id] = offer  # the latest round wins

    async def _read_drops_and_overlaps(self, session: AsyncSession, shift: Shift) -> None:
        dropped = await session.scalars(
            select(ShiftEvent.caregiver_id).where(
                ShiftEvent.tenant_id == shift.tenant_id,
                ShiftEvent.shift_id == shift.id,
                ShiftEvent.kind == "dropped",
            )
        )
        self.dropped = {cid for cid in dropped if cid}
        overlapping = await session.execute(
            select(Shift.assigned_caregiver_id, Shift.id).where(
                Shift.tenant_id == shift.tenant_id,
                Shift.status == "filled",
                Shift.id != shift.id,
                Shift.start_time < shift.end_time,
                Shift.end_time > shift.start_time,
            )
        )
        for caregiver_id, other in overlapping:
            if caregiver_id is not None:
                self.overlaps[caregiver_id].append(other)


def _candidate(
    shift: Shift,
    row: Any,
    facts: _Facts,
    channels: list[str],
    policy: ShiftPolicy,
    now: datetime,
) -> Candidate:
    reasons = _reasons(row, facts, channels)
    offer = facts.offers.get(row.id)
    base = {"caregiver_id": row.id, "name": row.name, "reasons": reasons}
    if shift.assigned_caregiver_id == row.id:
        return Candidate(**base, state="assigned", offer=_offer(offer))
    if offer is not None:
        return Candidate(**base, state="offered", offer=_offer(offer))
    blocked = any(r.startswith(_BLOCKING) for r in reasons)
    if blocked or all(f"opted out of {c}" in reasons for c in channels):
        return Candidate(**base, state="not_offered")
    quiet = _quiet_reason(shift, row, channels[0], policy, now)
    if quiet is None:
        return Candidate(**base, state="eligible")
    state = "not_offered" if quiet.startswith("not offered") else "eligible"
    return Candidate(**{**base, "reasons": [*reasons, quiet]}, state=state)


def _reasons(row: Any, facts: _Facts, channels: list[str]) -> list[str]:
    reasons = [] if row.active else ["inactive"]
    reasons += ["declined"] if row.id in facts.declined else []
    reasons += ["dropped this shift"] if row.id in facts.dropped else []
    reasons += [f"overlapping shift {other}" for other in facts.overlaps.get(row.id, [])]
    reasons += ["over weekly hours"] if row.id in facts.over_hours else []
    reasons += [f"opted out of {c}" for c in channels if (row.phone, c) in facts.opted_out]
    if facts.first_tiers and row.tier not in facts.first_tiers:
        reasons.append(
            f"tier {row.tier or 'none'}: not in round 1 (tiers {list(facts.first_tiers)})"
        )
    return reasons


def _quiet_reason(
    shift: Shift, row: Any, channel: str, policy: ShiftPolicy, now: datetime
) -> str | None:
    zones = caregiver_zones(row.tz, row.phone, shift.tz)
    quiet = QuietHours.of(policy.quiet_hours)
    timing = offer_timing(
        now,
        zones,
        quiet,
        channel=channel,
        shift_start=shift.start_time,
        urgent_overrides=policy.urgent_overrides_quiet,
    )
    if timing.at is None:
        return timing.note
    if timing.at > now:
        local = timing.at.astimezone(ZoneInfo(zones[0]))
        return f"quiet hours until {local:%H:%M} local"
    return None


def _offer(offer: Offer | None) -> dict[str, Any] | None:
    if offer is None:
        return None
    return {
        "round": offer.round,
        "channel": offer.channel,
        "generation": offer.generation,
        "held_until": offer.held_until,
        "reply": offer.reply_intent,
    }
