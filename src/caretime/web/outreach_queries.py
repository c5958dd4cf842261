"""Read-only views of calls the dashboard needs beyond outreach's service: search, counts for
a day, and scheduled calls per hour by zone. Tenant-scoped through outreach's repositories."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking import cursors
from caretime.outreach.models import PENDING, Call, OutreachBatch
from caretime.outreach.repository import BatchRepository, CallRepository


async def search_calls(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None,
    text: str | None,
    batch_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Call], str | None]:
    """Calls by status, batch, and a name fragment or phone digits, in the order they are (or
    were) made: by scheduled time, earliest first, paginated by (time, id)."""
    calls = CallRepository(session, tenant_id)
    statement = calls.select()
    if status:
        statement = statement.where(Call.status == status)
    if batch_id:
        statement = statement.where(Call.batch_id == batch_id)
    if text:
        statement = statement.where(_matches(text))
    after = cursors.decode(cursor)
    if after is not None:
        statement = statement.where(tuple_(Call.scheduled_at, Call.id) > tuple_(*after))
    rows = await calls.all(statement.order_by(Call.scheduled_at, Call.id).limit(limit + 1))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], cursors.encode((last.scheduled_at, last.id))


def _matches(text: str) -> ColumnElement[bool]:
    digits = "".join(ch for ch in text if ch.isdigit())
    by_name = func.lower(Call.name).contains(text.strip().lower(), autoescape=True)
    return or_(by_name, Call.phone_e164.contains(digits)) if digits else by_name


async def status_counts(
    session: AsyncSession, tenant_id: str, *, start: datetime, end: datetime
) -> dict[str, int]:
    """Calls scheduled in [start, end) by their status now."""
    rows = await session.execute(
        select(Call.status, func.count())
        .where(Call.tenant_id == tenant_id, Call.scheduled_at >= start, Call.scheduled_at < end)
        .group_by(Call.status)
    )
    return {status: count for status, count in rows.all()}


async def pending_per_hour(
    session: AsyncSession,
    tenant_id: str,
    *,
    start: datetime,
    end: datetime,
    batch_id: str | None = None,
) -> list[tuple[datetime, str, int]]:
    """(hour, patient zone, calls) for calls still to be made between start and end."""
    hour = Call.scheduled_minute // 60
    statement = (
        select(hour, Call.tz, func.count())
        .where(
            Call.tenant_id == tenant_id,
            Call.status == PENDING,
            Call.scheduled_at >= start,
            Call.scheduled_at < end,
        )
        .group_by(hour, Call.tz)
    )
    if batch_id is not None:
        statement = statement.where(Call.batch_id == batch_id)
    rows = await session.execute(statement)
    return [(datetime.fromtimestamp(h * 3600, UTC), tz, n) for h, tz, n in rows.all()]


async def recent_batches(
    session: AsyncSession, tenant_id: str, *, limit: int = 20
) -> Sequence[OutreachBatch]:
    batches = BatchRepository(session, tenant_id)
    return await batches.all(
        batches.select()
        .order_by(OutreachBatch.created_at.desc(), OutreachBatch.id.desc())
        .limit(limit)
    )
