"""Messaging endpoints: inbound replies, message lookup, and the simulator's phones."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query

from caretime.deps import ClockDep, RuntimeDep, SessionDep
from caretime.errors import NotFound
from caretime.messaging import inbound
from caretime.messaging.agents import router as agents_router
from caretime.messaging.contacts import router as contacts_router
from caretime.messaging.desk import reply_desk
from caretime.messaging.keypad_routes import router as keypad_router
from caretime.messaging.phones import to_e164
from caretime.messaging.providers import providers_of
from caretime.messaging.repository import MessageRepository
from caretime.messaging.schemas import (
    InboundIn,
    InboundOut,
    MessageDetailOut,
    MessageOut,
    MessagePage,
)
from caretime.messaging.webhooks import router as webhooks_router
from caretime.openapi import problems
from caretime.storable import PathText, QueryText
from caretime.tenancy.auth import TenantDep

router = APIRouter()
api = APIRouter(tags=["messaging"])


@api.post("/messages/inbound")
async def receive_inbound(
    reply: InboundIn,
    tenant: TenantDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="The same key again records nothing new and texts nobody again.",
        ),
    ] = None,
) -> InboundOut:
    """Record a reply, classify it and route it (claim a shift, confirm, opt out...). The same
    `message_id` or `Idempotency-Key` again answers what the first did and changes nothing."""
    received = inbound.Inbound(
        from_phone=reply.sender,
        body=reply.body,
        hint=reply.hint(),
        provider_id=reply.message_id,
        idempotency_key=idempotency_key,
    )
    # No transaction of the request's own: the key check ran on a reader (deps.reading_first)
    # and the reply is written by its batch (messaging.desk).
    answer = await reply_desk(runtime).receive(
        tenant.id, received, now=clock.now(), classifier=inbound.classifier_of(runtime)
    )
    return InboundOut.model_validate(answer)


@api.get("/messages/{message_id}", responses=problems(NotFound))
async def get_message(
    message_id: PathText, tenant: TenantDep, session: SessionDep
) -> MessageDetailOut:
    """One message with its provider events in arrival order."""
    messages = MessageRepository(session, tenant.id)
    message = await messages.get(message_id)
    if message is None:
        raise NotFound(f"no message {message_id!r}")
    return MessageDetailOut.of(message, await messages.events(message_id))


@api.get("/simulator/messages", responses=problems(NotFound), tags=["simulator"])
async def simulator_messages(
    tenant: TenantDep,
    session: SessionDep,
    runtime: RuntimeDep,
    to: QueryText = None,
    channel: Literal["sms", "voice"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePage:
    """What the simulated phones received (SMS and calls), newest first: the latest `limit`
    (a test inbox, not an archive: `next_cursor` is always null)."""
    if not providers_of(runtime).uses("simulator"):
        raise NotFound("the simulator provider is not configured")
    phone = None if to is None else (to_e164(to) or to)
    rows = await MessageRepository(session, tenant.id).received_by(
        "simulator", to=phone, channel=channel, limit=limit
    )
    return MessagePage(items=[MessageOut.model_validate(row) for row in rows], next_cursor=None)


router.include_router(api)
router.include_router(contacts_router)
router.include_router(agents_router)
router.include_router(webhooks_router)
router.include_router(keypad_router)
