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
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

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
BATCH_ROWS = 500


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


async def send_message(
    session: AsyncSession,
    *,
    tenant_id: str,
    channel: str,
    to: str,
    body: str,
    idempotency_key: str,
    related: RelatedEntity | None = None,
) -> Message:
    """Queue one message (see send_messages); the same key again returns the first message."""
    outgoing = OutgoingMessage(channel, to, body, idempotency_key, related)
    return (await send_messages(session, tenant_id=tenant_id, outgoing=[outgoing]))[0]


async def send_messages(
    session: AsyncSession,
    *,
    tenant_id: str,
    outgoing: Sequence[OutgoingMessage],
) -> list[Message]:
    """Queue many messages: rows and jobs in bulk, in input order. Keys already used return
    the existing messages and send nothing. Opted-out numbers are suppressed, except for
    compliance replies (see consent.COMPLIANCE_KIND)."""
    _check_channels(outgoing)
    now = session_clock(session).now()
    suppressed = await opted_out_numbers(session, tenant_id, _numbers(outgoing))
    rows = _unique_rows(tenant_id, outgoing, suppressed, now)
    by_key: dict[str, Message] = {}
    to_send: list[str] = []
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        found, inserted = await _insert_batch(session, tenant_id, batch)
        by_key.update(found)
        to_send.extend(
            row["id"] for row in batch if row["id"] in inserted and row["status"] == QUEUED
        )
    await enqueue_many(session, send_jobs(tenant_id, to_send, run_at=now))
    return [by_key[item.idempotency_key] for item in outgoing]


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
    tenant_id: str,
    outgoing: Sequence[OutgoingMessage],
    suppressed: set[tuple[str, str]],
    now: datetime,
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for item in outgoing:
        rows.setdefault(item.idempotency_key, _row(tenant_id, item, suppressed, now))
    return list(rows.values())


def _row(
    tenant_id: str, item: OutgoingMessage, suppressed: set[tuple[str, str]], now: datetime
) -> dict[str, Any]:
    phone = to_e164(item.to)
    status, reason, error = QUEUED, None, None
    if phone is None:
        status, error = FAILED, "not a dialable phone number"
    elif (phone, item.channel) in suppressed:
        status, reason = SUPPRESSED, f"{item.channel} opted out by the recipient"
    return {
        "id": new_id("msg"),
        "tenant_id": tenant_id,
        "direction": "outbound",
        "channel": item.channel,
        "to_phone": (phone or item.to)[:32],
        "from_phone": None,
        "body": item.body,
        "status": status,
        "idempotency_key": item.idempotency_key,
        "related_kind": item.related.kind if item.related else None,
        "related_id": item.related.id if item.related else None,
        "suppression_reason": reason,
        "error": error,
        "created_at": now,
        "updated_at": now,
        "status_changed_at": now,
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


async def _insert_batch(
    session: AsyncSession, tenant_id: str, rows: list[dict[str, Any]]
) -> tuple[dict[str, Message], set[str]]:
    # An ORM bulk INSERT ... RETURNING: the new rows come back as Message objects in one
    # round trip. Only keys used before (rare) are read back, by key: a read of all the keys
    # was a filter over every message of the tenant while the table had no statistics.
    statement = _insert_ignoring_duplicates(session).returning(Message)
    inserted = list((await session.scalars(statement, rows)).all())
    found = {message.idempotency_key or "": message for message in inserted}
    earlier = [row["idempotency_key"] for row in rows if row["idempotency_key"] not in found]
    if earlier:
        existing = await session.scalars(
            select(Message).where(
                Message.tenant_id == tenant_id, Message.idempotency_key.in_(earlier)
            )
        )
        found.update((message.idempotency_key or "", message) for message in existing)
    return found, {message.id for message in inserted}


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    conflict = ["tenant_id", "idempotency_key"]
    if dialect == "postgresql":
        return postgresql.insert(Message).on_conflict_do_nothing(index_elements=conflict)
    if dialect == "sqlite":
        return sqlite.insert(Message).on_conflict_do_nothing(index_elements=conflict)
    return insert(Message)
