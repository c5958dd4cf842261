"""Messaging: SMS and voice out, replies in, intent, opt-out; providers behind one Protocol.

The contract other domains use:
    send_message / send_messages (OutgoingMessage, RelatedEntity) -> Message
    queue_messages (the same for thousands) -> QueuedMessage (id, status, related_id)
    hand_over_in_steps(ctx, ids) -> HandoverResult: a job handing over messages it queued
        with enqueue_send=False (committed steps; what to retry and when is the caller's);
        prepare_hand_over(ctx, session, ids) -> HandOver: its first step inside the
        caller's own step, then `await hand_over.run()` once that commits
    @on_status_change("kind") async def listener(session, message, status)
    @on_status_changes("kind") async def listener(session, [(message, status), ...])
    register_inbound_router(router) with InboundRouter, OpenQuestion, RouteResult
    Intent, classify_intent
    Message, MessageEvent: the tables, for reading a related message's status and history
"""

from caretime.messaging.handover import (
    HandOver,
    HandoverResult,
    hand_over_in_steps,
    prepare_hand_over,
)
from caretime.messaging.intent import Intent, IntentClassifier, classify_intent
from caretime.messaging.models import Message, MessageEvent
from caretime.messaging.outbound import (
    OutgoingMessage,
    QueuedMessage,
    RelatedEntity,
    queue_messages,
    send_message,
    send_messages,
)
from caretime.messaging.routing import (
    InboundRouter,
    OpenQuestion,
    RouteResult,
    register_inbound_router,
)
from caretime.messaging.tracking import StatusChanges, on_status_change, on_status_changes

__all__ = [
    "HandOver",
    "HandoverResult",
    "InboundRouter",
    "Intent",
    "IntentClassifier",
    "Message",
    "MessageEvent",
    "OpenQuestion",
    "OutgoingMessage",
    "QueuedMessage",
    "RelatedEntity",
    "RouteResult",
    "StatusChanges",
    "classify_intent",
    "hand_over_in_steps",
    "on_status_change",
    "on_status_changes",
    "prepare_hand_over",
    "queue_messages",
    "register_inbound_router",
    "send_message",
    "send_messages",
]
