"""Who may be offered a shift in a round: one query, so the rule reads in one place.

Qualifies: active, holds the required role, has not declined this shift, has not dropped
it (a call-out is never offered the shift back), is not assigned to another filled shift
that overlaps it, would not go over their weekly hours (`overtime.py`), is of a tier the
round targets (if it targets tiers), and has not opted out of the round's channel
(consent lives in messaging, which would also suppress such a message: we skip the offer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from caretime.messaging.consent import opted_out_numbers
from caretime.shifts.models import Caregiver, CaregiverRole, Offer, Shift, ShiftEvent
from caretime.shifts.overtime import over_weekly_hours
from caretime.tenancy.policy import ShiftPolicy


def has_declined(shift: Shift) -> ColumnElement[bool]:
    return exists().where(
        Offer.tenant_id == shift.tenant_id,
        Offer.shift_id == shift.id,
        Offer.caregiver_id == Caregiver.id,
        Offer.reply_intent == "decline",
    )


def has_dropped(tenant_id: str, shift_id: Any, caregiver_id: Any) -> ColumnElement[bool]:
    """The caregiver held this shift once and released it (or was taken off it)."""
    return exists().where(
        ShiftEvent.tenant_id == tenant_id,
        ShiftEvent.shift_id == shift_id,
        ShiftEvent.kind == "dropped",
        ShiftEvent.caregiver_id == caregiver_id,
    )


def overlapping_assignment(
    tenant_id: str, caregiver_id: Any, start: Any, end: Any, *, excluding: str
) -> ColumnElement[bool]:
    """The caregiver already holds a filled shift that overlaps [start, end)."""
    other = aliased(Shift)
    return exists().where(
        other.tenant_id == tenant_id,
        other.assigned_caregiver_id == caregiver_id,
        other.status == "filled",
        other.id != excluding,
        other.start_time < end,
        other.end_time > start,
    )


async def qualifying_caregivers(
    session: AsyncSession,
    shift: Shift,
    *,
    channel: str,
    policy: ShiftPolicy,
    wave: Wave | None = None,
) -> Sequence[Any]:
    """(id, phone, tz) of every caregiver who qualifies now, ordered by id (a stable order keeps
    concurrent inserts of the same offers from deadlocking)."""
    statement = (
        select(Caregiver.id, Caregiver.phone, Caregiver.tz)
        .join(
            CaregiverRole,
            and_(
                CaregiverRole.tenant_id == Caregiver.tenant_id,
                CaregiverRole.caregiver_id == Caregiver.id,
            ),
        )
        .where(
            Caregiver.tenant_id == shift.tenant_id,
            Caregiver.active.is_(True),
            CaregiverRole.role == shift.role_required,
            ~has_declined(shift),
            ~has_dropped(shift.tenant_id, shift.id, Caregiver.id),
            ~overlapping_assignment(
                shift.tenant_id, Caregiver.id, shift.start_time, shift.end_time, excluding=shift.id
            ),
        )
        .order_by(Caregiver.id)
    )
    if wave is not None:
        statement = statement.where(*wave.conditions(shift, channel))
    rows = (await session.execute(statement)).all()
    wanted = {(row.phone, channel) for row in rows}
    opted_out = {phone for phone, _ in await opted_out_numbers(session, shift.tenant_id, wanted)}
    over = await over_weekly_hours(session, shift, policy)
    return [row for row in rows if row.phone not in opted_out and row.id not in over]


@dataclass(frozen=True)
class Wave:
    """A round that targets tiers: only those tiers, and not whoever this fan-out generation
    already offered on the round's channel (a wave widens the audience, it does not repeat)."""

    tiers: tuple[int, ...]
    generation: int

    def conditions(self, shift: Shift, channel: str) -> list[ColumnElement[bool]]:
        offered_here = exists().where(
            Offer.tenant_id == shift.tenant_id,
            Offer.shift_id == shift.id,
            Offer.caregiver_id == Caregiver.id,
            Offer.generation == self.generation,
            Offer.channel == channel,
        )
        return [Caregiver.tier.in_(self.tiers), ~offered_here]
