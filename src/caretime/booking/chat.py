"""One reply in a booking conversation: the prompt it answers and what was said, with the
helpers every conversation step needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import prompts
from caretime.booking.models import Appointment, BookingPrompt, Provider
from caretime.booking.replies import Understood
from caretime.booking.repository import AppointmentRepository, booking_policy
from caretime.booking.service import require_provider
from caretime.messaging import RouteResult
from caretime.tenancy.policy import BookingPolicy


@dataclass
class Chat:
    session: AsyncSession
    tenant_id: str
    prompt: BookingPrompt
    said: Understood
    now: datetime

    async def appointment(self) -> Appointment | None:
        if self.prompt.appointment_id is None:
            return None
        return await AppointmentRepository(self.session, self.tenant_id).get(
            self.prompt.appointment_id
        )

    async def provider(self, provider_id: str) -> Provider:
        return await require_provider(self.session, self.tenant_id, provider_id)

    async def policy(self) -> BookingPolicy:
        return await booking_policy(self.session, self.tenant_id)

    async def done(self) -> None:
        await prompts.close(self.session, self.prompt, now=self.now)

    def result(self, action: str, reply: str, **details: Any) -> RouteResult:
        ids = {"reservation_id": self.prompt.appointment_id} if self.prompt.appointment_id else {}
        if self.prompt.waitlist_id:
            ids["waitlist_id"] = self.prompt.waitlist_id
        return RouteResult(action, reply, {**ids, **details})
