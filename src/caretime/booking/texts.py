"""What booking texts patients, PHI-minimal: the provider's name and the local time, never
the patient's name or the visit's reason."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import prompts
from caretime.booking.models import Appointment, Provider


def describe(provider: Provider, slot_start: datetime) -> str:
    """'Dr. Jekyll on Tue Mar 3, 2026 at 11:00 EST' (the provider's local time)."""
    return f"{provider.name} on {when(provider, slot_start)}"


def when(provider: Provider, slot_start: datetime) -> str:
    """'Tue Mar 3, 2026 at 11:00 EST' (the provider's local time)."""
    local = slot_start.astimezone(ZoneInfo(provider.tz))
    return f"{local:%a %b} {local.day}, {local:%Y at %H:%M %Z}"


async def ask_to_confirm(
    session: AsyncSession, tenant_id: str, hold: Appointment, provider: Provider
) -> None:
    """Queue the question in the caller's transaction (once per hold: the key is its id)."""
    assert hold.patient_phone is not None
    body = (
        f"Reply YES to confirm your appointment with {describe(provider, hold.slot_start)}, "
        "or NO to cancel."
    )
    question = prompts.Question(
        "confirm",
        hold.patient_phone,
        body,
        f"booking:{hold.id}:confirm",
        expires_at=hold.slot_start,
        appointment_id=hold.id,
    )
    await prompts.ask(session, tenant_id, question, now=hold.created_at)
