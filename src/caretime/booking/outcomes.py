"""A visit's outcome, recorded by the clinic: arrived, fulfilled (checked out) or no_show.

Each move is one conditional UPDATE whose WHERE is its row of the transitions table, so a
move that is not allowed (a no-show before the start, an arrival for a cancelled visit)
changes nothing and says why.

| from \\ to | arrived | fulfilled | no_show |
|---|---|---|---|
| confirmed | from 2 h before the start | from the start | from the start |
| arrived | (unchanged) | yes | no |
| no_show | yes (a late arrival) | no | (unchanged) |
| anything else | no | no | no |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import lifecycle
from caretime.booking.errors import InvalidTransition, ReservationNotFound
from caretime.booking.models import Appointment
from caretime.booking.repository import AppointmentRepository
from caretime.clock import isoformat_z

OUTCOMES = ("arrived", "fulfilled", "no_show")
# Patients check in early; a day early is a mistake, not an arrival.
EARLY_ARRIVAL = timedelta(hours=2)


@dataclass(frozen=True)
class Rule:
    sources: tuple[str, ...]
    earliest: timedelta  # how long before the visit's start the move is allowed
    stamp: str  # the column that records when


RULES = {
    "arrived": Rule(("confirmed", "no_show"), EARLY_ARRIVAL, "arrived_at"),
    "fulfilled": Rule(("confirmed", "arrived"), timedelta(0), "ended_at"),
    "no_show": Rule(("confirmed",), timedelta(0), "ended_at"),
}


async def record(
    session: AsyncSession, tenant_id: str, appointment_id: str, outcome: str, *, now: datetime
) -> tuple[Appointment, bool]:
    """Move to an outcome: the visit, and whether it moved (already there: unchanged, a
    retry)."""
    rule = RULES[outcome]
    values: dict[str, Any] = {"status": outcome, "updated_at": now, rule.stamp: now}
    statement = (
        update(Appointment)
        .where(
            Appointment.tenant_id == tenant_id,
            Appointment.id == appointment_id,
            Appointment.status.in_(rule.sources),
            Appointment.slot_start <= now + rule.earliest,
        )
        .values(**values)
        .returning(Appointment)
        .execution_options(populate_existing=True)
    )
    moved = (await session.scalars(statement)).first()
    if moved is not None:
        return moved, True
    appointment = await AppointmentRepository(session, tenant_id).get(appointment_id)
    if appointment is None:
        raise ReservationNotFound(f"no reservation {appointment_id!r}")
    if appointment.status == outcome:
        return appointment, False
    raise _refusal(appointment, outcome, rule, now)


def _refusal(
    appointment: Appointment, outcome: str, rule: Rule, now: datetime
) -> InvalidTransition:
    status = lifecycle.effective_status(appointment, now)
    if status in rule.sources:
        allowed = appointment.slot_start - rule.earliest
        return InvalidTransition(
            f"a visit can be marked {outcome} from {isoformat_z(allowed)}, not before",
            reservation_status=status,
            allowed_from=isoformat_z(allowed),
        )
    return InvalidTransition(
        f"cannot mark a reservation that is {status} as {outcome}", reservation_status=status
    )
