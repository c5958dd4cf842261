"""Message queries, scoped to one tenant."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging.models import Message, MessageEvent
from caretime.repository import TenantRepository


class MessageRepository(TenantRepository[Message]):
    model = Message

    async def received_by(
        self, provider: str, *, to: str | None, channel: str | None, limit: int
    ) -> Sequence[Message]:
        """Outbound messages a provider accepted (it gave them an id), newest first."""
        statement = self.select().where(
            Message.direction == "outbound",
            Message.provider == provider,
            Message.provider_id.is_not(None),
        )
        if to is not None:
            statement = statement.where(Message.to_phone == to)
        if channel is not None:
            statement = statement.where(Message.channel == channel)
        return await self.all(
            statement.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
        )

    async def events(self, message_id: str) -> Sequence[MessageEvent]:
        result = await self.session.scalars(
            select(MessageEvent)
            .where(MessageEvent.tenant_id == self.tenant_id, MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
        return result.all()


async def find_by_provider_id(
    session: AsyncSession, provider: str, provider_id: str
) -> Message | None:
    """Across tenants: provider callbacks carry only the provider's id for the message."""
    result = await session.scalars(
        select(Message)
        .where(Message.provider == provider, Message.provider_id == provider_id)
        .limit(1)
    )
    return result.first()
