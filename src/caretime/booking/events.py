"""What booking tells the events log: `appointment.<status>` with a snapshot of the hold
(ids, provider, slot, statuses and times; never the patient's phone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.models import Appointment
from caretime.clock import isoformat_z
from caretime.events import emit_many

HELD = "appointment.held"


def appointment_data(appointment: Appointment) -> dict[str, Any]:
    def instant(value: datetime | None) -> str | None:
        return None if value is None else isoformat_z(value)

    return {
        "id": appointment.id,
        "provider_id": appointment.provider_id,
        "client_id": appointment.client_id,
        "status": appointment.status,
        "slot_start": instant(appointment.slot_start),
        "slot_end": instant(appointment.slot_end),
        "hold_expires_at": instant(appointment.hold_expires_at),
        "confirmed_at": instant(appointment.confirmed_at),
        "ended_at": instant(appointment.ended_at),
    }


async def appointments_changed(
    session: AsyncSession, tenant_id: str, moved: Sequence[Appointment], *, now: datetime
) -> None:
    """One `appointment.<status>` per appointment that just moved (all to the same status)."""
    if not moved:
        return
    await emit_many(session, tenant_id=tenant_id, type=f"appointment.{moved[0].status}",
                    subjects=("appointment", [a.id for a in moved]),
                    data=[appointment_data(a) for a in moved], now=now)  # fmt: skip
