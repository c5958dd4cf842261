"""HTTP: the event feed, and the audit trail of one subject (for the domains' routers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.deps import SessionDep
from caretime.events.feed import FeedQuery, parse_subject, read_feed
from caretime.events.present import event_document
from caretime.events.schemas import EventOut, EventPage

__all__ = ["Cursor", "EventPage", "Limit", "router", "subject_events"]
from caretime.events.webhooks.endpoints import check_patterns
from caretime.tenancy.auth import TenantDep

router = APIRouter(tags=["events"])
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=100, description="next_cursor of a page")]


@router.get("/events")
async def list_events(
    tenant: TenantDep,
    session: SessionDep,
    type: Annotated[
        list[str] | None, Query(description="`call.completed`, `call.*`; repeat or comma-separate")
    ] = None,
    subject: Annotated[str | None, Query(max_length=240, description="kind:id")] = None,
    after: Cursor = None,
    limit: Limit = 100,
) -> EventPage:
    types = [t.strip() for value in type or [] for t in value.split(",") if t.strip()]
    query = FeedQuery(
        types=check_patterns(types, loc=("query", "type")) if types else (),
        subject=parse_subject(subject) if subject else None,
        after=after,
        limit=limit,
    )
    return await _page(session, tenant.id, query)


async def subject_events(
    session: AsyncSession,
    tenant_id: str,
    subject: tuple[str, str],
    *,
    after: str | None,
    limit: int,
) -> EventPage:
    """A subject's audit trail: who changed what, when, in order."""
    return await _page(session, tenant_id, FeedQuery(subject=subject, after=after, limit=limit))


async def _page(session: AsyncSession, tenant_id: str, query: FeedQuery) -> EventPage:
    page = await read_feed(session, tenant_id, query)
    items = [EventOut.model_validate(event_document(e)) for e in page.items]
    return EventPage(items=items, next_cursor=page.next_cursor, has_more=page.has_more)
