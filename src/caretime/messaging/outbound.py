"""Sending: a message row and its dispatch job, written in the caller's transaction.

Nothing here talks to a provider; the dispatch jobs do: `messaging.send` for a single new
message, `messaging.send_batch` (one job per chunk of up to 200 new messages) for bulk sends.
Idempotency is the database's: one INSERT ... ON CONFLICT DO NOTHING per batch on (tenant,
idempotency key). Consent is checked first: a number opted out on a channel gets a
`suppressed` message that says why, and no job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import SkipConflicts, insert_rows, where_one_of
from caretime.dispatch.queue import NewJob, enqueue_many
from caretime.dispatch.wakeup import session_clock
from caretime.errors import InvalidInput
from caretime.ids import new_id
from caretime.messaging.consent import needs_consent, opted_out_numbers
from caretime.messaging.models import Message
from caretime.messaging.phones import to_e164
from caretime.messaging.statuses import CHANNELS, FAILED, QUEUED, SUPPRESSED

SEND_JOB = "messaging.send"
SEND_BATCH_JOB = "messaging.send_batch"
# Messages per `messaging.send_batch` job: one transaction and one provider call each.
SEND_BATCH_SIZE = 200
_USED_KEYS = SkipConflicts(("tenant_id", "idempotency_key"))


@dataclass(frozen=True)
class RelatedEntity:
    kind: str
    id: str


@dataclass(frozen=True)
class OutgoingMessage:
    channel: str
    to: str
    body: str
    idempotency_key: str
    related: RelatedEntity | None = None
    # The new message's id, for a caller that writes it into its own rows first (shift offers
    # do, so they join their message by primary key). A key used before keeps its message,
    # whose id the returned QueuedMessage carries.
    id: str | None = None
    # What a structured provider (an AI voice agent) is told beside the body.
    context: dict[str, Any] | None = None


async def send_message(
    session: AsyncSession,
    *,
    tenant_id: str,
    channel: str,
    to: str,
    body: str,
    idempotency_key: str,
    related: RelatedEntity | None = None,
    context: dict[str, Any] | None = None,
    enqueue_send: bool = True,
) -> Message:
    """Queue one message (see send_messages); the same key again returns the first message.
    `enqueue_send=False`: no send job; the caller hands it over (`hand_over_in_steps`)."""
    outgoing = OutgoingMessage(channel, to, body, idempotency_key, related, context=context)
    sent = await send_messages(
        session, tenant_id=tenant_id, outgoing=[outgoing], enqueue_send=enqueue_send
    )
    return sent[0]


async def send_messages(
    session: AsyncSession,
    *,
    tenant_id: str,
    outgoing: Sequence[OutgoingMessage],
    enqueue_send: bool = True,
) -> list[Message]:
    """Queue many messages (see queue_messages) and return them as Message objects, in input
    order. Meant for a few messages; a fan-out uses queue_messages and loads nothing."""
    queued = await queue_messages(
        session, tenant_id=tenant_id, outgoing=outgoing, enqueue_send=enqueue_send
    )
    ids = list({q.id for q in queued})
    found = await session.scalars(where_one_of(session, select(Message), Message.id, ids))
    by_id = {message.id: message for message in found}
    return [by_id[q.id] for q in queued]


class QueuedMessage(NamedTuple):
    id: str
    status: str
    related_id: str | None


async def queue_messages(
    session: AsyncSession,
    *,
    tenant_id: str,
    outgoing: Sequence[OutgoingMessage],
    enqueue_send: bool = True,
) -> list[QueuedMessage]:
    """Queue many messages: rows and jobs in bulk, in input order. Keys already used return
    the existing messages and send nothing. Opted-out numbers are suppressed, except for
    compliance replies (see consent.COMPLIANCE_KIND). With `enqueue_send=False` no send job
    is written: the caller's own job hands the messages over (`hand_over_in_steps`) and
    owns their retries."""
    _check_channels(outgoing)
    now = session_clock(session).now()
    suppressed = await opted_out_numbers(session, tenant_id, _numbers(outgoing))
    rows = _unique_rows(outgoing, suppressed)
    inserted = await _insert_new(session, tenant_id, rows, now)
    by_key = {
        row["idempotency_key"]: QueuedMessage(row["id"], row["status"], row["related_id"])
        for row in rows
        if row["id"] in inserted
    }
    earlier = [row["idempotency_key"] for row in rows if row["id"] not in inserted]
    by_key.update(await _queued_before(session, tenant_id, earlier))
    to_send = [row["id"] for row in rows if row["id"] in inserted and row["status"] == QUEUED]
    if enqueue_send:
        await enqueue_many(session, send_jobs(tenant_id, to_send, run_at=now))
    return [by_key[item.idempotency_key] for item in outgoing]


async def _insert_new(
    session: AsyncSession, tenant_id: str, rows: list[dict[str, Any]], now: datetime
) -> set[str]:
    """Insert the rows whose idempotency key is new; returns their ids."""
    columns = {name: [row[name] for row in rows] for name in (rows[0] if rows else ())}
    shared = {
        "tenant_id": tenant_id,
        "direction": "outbound",
        "created_at": now,
        "updated_at": now,
        "status_changed_at": now,
    }
    ids = await insert_rows(
        session, Message, columns, shared=shared, skip=_USED_KEYS, returning="id"
    )
    return set(ids)


async def _queued_before(
    session: AsyncSession, tenant_id: str, keys: Sequence[str]
) -> dict[str, QueuedMessage]:
    """Messages already queued under these idempotency keys (a repeated send: rare)."""
    if not keys:
        return {}
    statement = select(
        Message.idempotency_key, Message.id, Message.status, Message.related_id
    ).where(Message.tenant_id == tenant_id)
    rows = await session.execute(where_one_of(session, statement, Message.idempotency_key, keys))
    return {key or "": QueuedMessage(id_, status, related) for key, id_, status, related in rows}


def _check_channels(outgoing: Iterable[OutgoingMessage]) -> None:
    for item in outgoing:
        if item.channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {item.channel!r}: use 'sms' or 'voice'")
        if not item.idempotency_key:
            raise InvalidInput("every outgoing message needs an idempotency key")


def _numbers(outgoing: Iterable[OutgoingMessage]) -> set[tuple[str, str]]:
    return {
        (to_e164(item.to) or item.to, item.channel)
        for item in outgoing
        if needs_consent(item.related.kind if item.related else None)
    }


def _unique_rows(
    outgoing: Sequence[OutgoingMessage], suppressed: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for item in outgoing:
        if item.idempotency_key not in rows:
            rows[item.idempotency_key] = _row(item, suppressed)
    return list(rows.values())


def _row(item: OutgoingMessage, suppressed: set[tuple[str, str]]) -> dict[str, Any]:
    phone = to_e164(item.to)
    status, reason, error = QUEUED, None, None
    if phone is None:
        status, error = FAILED, "not a dialable phone number"
    elif (phone, item.channel) in suppressed:
        status, reason = SUPPRESSED, f"{item.channel} opted out by the recipient"
    return {
        "id": item.id or new_id("msg"),
        "channel": item.channel,
        "to_phone": (phone or item.to)[:32],
        "body": item.body,
        "status": status,
        "idempotency_key": item.idempotency_key,
        "related_kind": item.related.kind if item.related else None,
        "related_id": item.related.id if item.related else None,
        "suppression_reason": reason,
        "error": error,
        "context": item.context,
    }


def send_jobs(
    tenant_id: str, message_ids: Sequence[str], *, run_at: datetime, attempt: int = 1
) -> list[NewJob]:
    """The jobs that hand these messages over: `messaging.send` for a single one, else one
    `messaging.send_batch` per chunk, deduplicated by the chunk's ids, attempt and time."""
    if len(message_ids) == 1 and attempt == 1:
        return [
            NewJob(SEND_JOB, {"message_id": message_ids[0]}, run_at=run_at, tenant_id=tenant_id)
        ]
    jobs = []
    for start in range(0, len(message_ids), SEND_BATCH_SIZE):
        chunk = list(message_ids[start : start + SEND_BATCH_SIZE])
        digest = hashlib.sha256("\n".join(sorted(chunk)).encode()).hexdigest()[:40]
        payload: dict[str, Any] = {"message_ids": chunk, "attempt": attempt}
        key = f"{SEND_BATCH_JOB}:{digest}:{attempt}:{run_at.isoformat()}"
        jobs.append(NewJob(SEND_BATCH_JOB, payload, run_at, tenant_id, dedupe_key=key))
    return jobs
