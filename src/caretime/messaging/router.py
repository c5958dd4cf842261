"""Messaging endpoints: inbound replies, message lookup, and the simulator's phones.

`POST /messages/inbound` is answered directly (caretime.direct_routes) when its body is a
plain JSON reply: the route's three dependencies called as FastAPI calls them, then its
endpoint, without FastAPI's dependency solving, body handling and response validation
(docs/messaging.md, "The inbound route's direct answer"). Every other request (another
content type, a body the model refuses, an over-long Idempotency-Key) is answered by
FastAPI's route itself, so its problems (422s) are the route's own."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from caretime.deps import ClockDep, RuntimeDep, SessionDep, get_clock, get_runtime
from caretime.direct_routes import AnsweredByFastAPI, answers_directly
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
from caretime.tenancy.auth import TenantDep, current_tenant

router = APIRouter()
# The route's `Idempotency-Key` header, as its direct answer reads it too.
KEY_HEADER, KEY_MAX_LENGTH = "idempotency-key", 200
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
            max_length=KEY_MAX_LENGTH,
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


@answers_directly(receive_inbound, calls=(current_tenant, get_clock, get_runtime))
async def receive_inbound_directly(request: Request) -> Response:
    """`POST /messages/inbound` for a plain JSON reply; anything else is FastAPI's route's."""
    try:
        body = await request.body()
    except ClientDisconnect as gone:  # as FastAPI's route answers a body it could not read
        raise HTTPException(400, "There was an error parsing the body") from gone
    reply = _plain_reply(request.headers.get("content-type"), body)
    idempotency_key = request.headers.get(KEY_HEADER)
    if reply is None or (idempotency_key is not None and len(idempotency_key) > KEY_MAX_LENGTH):
        return AnsweredByFastAPI(request.scope["route"], body)
    tenant = await current_tenant(request)
    clock = await get_clock(request)
    runtime = await get_runtime(request)
    answer = await receive_inbound(reply, tenant, clock, runtime, idempotency_key)
    # What FastAPI's response model renders (pydantic's dump_json, by alias), byte for byte.
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")


def _plain_reply(content_type: str | None, body: bytes) -> InboundIn | None:
    """The body as FastAPI's route would read it (Starlette's `json.loads`, the model
    validated in Python mode), or None for anything that route would treat otherwise."""
    if content_type != "application/json":
        return None  # FastAPI parses the header's other JSON forms: left to it
    try:
        return InboundIn.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # Unicode and JSON errors are
        return None  # ValueErrors; RecursionError: JSON nested too deep for json.loads


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
