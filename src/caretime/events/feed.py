"""The event feed: filtered, cursor-paginated, newest last, safe to poll.

Polling by `seq` alone would skip events on PostgreSQL: sequence numbers are taken at insert
and transactions commit in any order, so seq 41 may become visible after a poller already
moved past 42. The feed therefore orders by (writing transaction id, seq) and shows only
events of transactions older than every writing transaction of this database still running:
that prefix of the order can no longer grow in the middle, so a cursor never skips anything.
The horizon is read before the events: first the snapshot's xmax (every older transaction
had its id by then), then the lowest transaction id still running in this database
(`pg_stat_activity.backend_xid`; the cluster-wide `pg_snapshot_xmin` would let any other
database's long transaction hold the feed back). The cost is a delay: an event appears once
every transaction of this database that began writing before it has ended (milliseconds
normally; a long transaction holds the feed back, never makes it skip).
SQLite has one writer at a time, so there seq order is commit order and txid is always 0.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import is_postgres
from caretime.errors import InvalidInput
from caretime.events.models import Event
from caretime.events.webhooks.deliveries import wanted


@dataclass(frozen=True)
class FeedQuery:
    types: Sequence[str] = ()
    subject: tuple[str, str] | None = None
    after: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class FeedPage:
    items: Sequence[Event]
    next_cursor: str | None
    has_more: bool


def encode_cursor(event: Event) -> str:
    return base64.urlsafe_b64encode(f"{event.txid}.{event.seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        txid, seq = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(".")
        return int(txid), int(seq)
    except ValueError:
        detail = "'after' is not a cursor this feed returned"
        raise InvalidInput(detail, errors=[{"loc": ["query", "after"], "msg": detail}]) from None


def parse_subject(value: str) -> tuple[str, str]:
    kind, sep, subject_id = value.partition(":")
    if not sep or not kind or not subject_id:
        detail = "'subject' is kind:id, e.g. call:call_01ab... or shift:42"
        raise InvalidInput(detail, errors=[{"loc": ["query", "subject"], "msg": detail}])
    return kind, subject_id


async def read_feed(session: AsyncSession, tenant_id: str, query: FeedQuery) -> FeedPage:
    statement = _filtered(tenant_id, query)
    if is_postgres(session):
        statement = statement.where(Event.txid < await _horizon(session))
    rows = list((await session.scalars(statement.limit(query.limit + 1))).all())
    items, has_more = rows[: query.limit], len(rows) > query.limit
    cursor = encode_cursor(items[-1]) if items else query.after
    return FeedPage(items, cursor, has_more)


def _filtered(tenant_id: str, query: FeedQuery) -> Select[Event]:
    statement = select(Event).where(Event.tenant_id == tenant_id)
    if query.types:
        statement = statement.where(wanted(query.types))
    if query.subject is not None:
        kind, subject_id = query.subject
        statement = statement.where(Event.subject_kind == kind, Event.subject_id == subject_id)
    if query.after is not None:
        txid, seq = decode_cursor(query.after)
        statement = statement.where(_after(txid, seq))
    return statement.order_by(Event.txid, Event.seq)


def _after(txid: int, seq: int) -> ColumnElement[bool]:
    return or_(Event.txid > txid, and_(Event.txid == txid, Event.seq > seq))


async def _horizon(session: AsyncSession) -> int:
    """Events of transactions below this id are all committed (or gone) for good."""
    xmax = await session.scalar(text(_XMAX))
    await session.execute(text("SELECT pg_stat_clear_snapshot()"))  # read activity afresh
    running = await session.scalar(text(_RUNNING_HERE))
    return int(xmax) if running is None else min(int(xmax), int(running))


_XMAX = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
_RUNNING_HERE = (
    "SELECT min(backend_xid::text::bigint) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
