"""Activity: the event feed, newest first, filterable by type and subject, with who acted."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from sqlalchemy import select
from starlette.responses import Response

from caretime.deps import SessionDep
from caretime.events.feed import parse_subject
from caretime.events.models import Event
from caretime.events.webhooks.deliveries import wanted
from caretime.events.webhooks.endpoints import check_patterns
from caretime.events.webhooks.patterns import valid_patterns_hint
from caretime.web.auth import ViewerDep
from caretime.web.routing import web_router

router = web_router()
SHOWN = 100


@router.get("/ui/activity")
async def activity_page(
    viewer: ViewerDep,
    db: SessionDep,
    type: Annotated[str, Query(max_length=64)] = "",
    subject: Annotated[str, Query(max_length=240)] = "",
) -> Response:
    statement = select(Event).where(Event.tenant_id == viewer.tenant_id)
    if type.strip():
        statement = statement.where(wanted(check_patterns([type.strip()], loc=("query", "type"))))
    if subject.strip():
        kind, subject_id = parse_subject(subject.strip())
        statement = statement.where(Event.subject_kind == kind, Event.subject_id == subject_id)
    events = (await db.scalars(statement.order_by(Event.seq.desc()).limit(SHOWN))).all()
    filters = {"type": type, "subject": subject}
    return viewer.render(
        "activity.html", events=events, filters=filters, hint=valid_patterns_hint()
    )
