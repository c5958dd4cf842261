"""What shifts tells the events log: `shift.<verb>` with the shift's snapshot (ids, status,
times, the assigned caregiver's id; never a caregiver's name or phone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.events import emit
from caretime.shifts.models import Shift


def shift_data(shift: Shift, **extra: Any) -> dict[str, Any]:
    return {
        "id": shift.id,
        "status": shift.status,
        "role_required": shift.role_required,
        "start_time": isoformat_z(shift.start_time),
        "end_time": isoformat_z(shift.end_time),
        "assigned_caregiver_id": shift.assigned_caregiver_id,
        "filled_at": None if shift.filled_at is None else isoformat_z(shift.filled_at),
        **extra,
    }


async def shift_changed(
    session: AsyncSession, shift: Shift, verb: str, *, now: datetime, **extra: Any
) -> None:
    await emit(session, tenant_id=shift.tenant_id, type=f"shift.{verb}",
               subject=("shift", shift.id), data=shift_data(shift, **extra), now=now)  # fmt: skip
