"""What the simulated phones saw: their numbers and each number's conversation.

Read functions over messaging's table that only the dashboard needs (the API lists one
number's inbox); every statement is scoped to the tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging import Message

SIMULATOR = "simulator"


@dataclass(frozen=True)
class SimulatedPhone:
    phone: str
    messages: int
    last_at: datetime


def _received_by_simulator(tenant_id: str) -> list[ColumnElement[bool]]:
    return [
        Message.tenant_id == tenant_id,
        Message.direction == "outbound",
        Message.provider == SIMULATOR,
        Message.provider_id.is_not(None),
    ]


async def simulated_phones(
    session: AsyncSession, tenant_id: str, *, limit: int = 100
) -> list[SimulatedPhone]:
    """Numbers the simulator delivered to, the most recently contacted first."""
    last_at = func.max(Message.created_at)
    rows = await session.execute(
        select(Message.to_phone, func.count(), last_at)
        .where(*_received_by_simulator(tenant_id))
        .group_by(Message.to_phone)
        .order_by(last_at.desc(), Message.to_phone)
        .limit(limit)
    )
    return [SimulatedPhone(phone, count, at) for phone, count, at in rows.all()]


async def phone_thread(
    session: AsyncSession, tenant_id: str, phone: str, *, limit: int = 200
) -> Sequence[Message]:
    """What reached this number and what it sent back, oldest first (the latest `limit`)."""
    received = and_(*_received_by_simulator(tenant_id), Message.to_phone == phone)
    sent = and_(
        Message.tenant_id == tenant_id,
        Message.direction == "inbound",
        Message.from_phone == phone,
    )
    newest = await session.scalars(
        select(Message)
        .where(or_(received, sent))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(reversed(newest.all()))
