"""Who is looking: the signed-in viewer (tenant-scoped like the API) and CSRF checks on forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from starlette.responses import Response

from caretime.deps import RuntimeDep, SessionDep
from caretime.errors import Unauthorized
from caretime.events import set_actor
from caretime.events.actor import dashboard_actor
from caretime.observability import bind_tenant
from caretime.runtime import Runtime
from caretime.tenancy.auth import key_uses_of
from caretime.tenancy.models import ApiKey
from caretime.tenancy.policy import TenantPolicy
from caretime.tenancy.service import policy_of
from caretime.tenancy.sessions import resume_session
from caretime.web.rendering import render
from caretime.web.session import (
    WebSession,
    browser_zone,
    chosen_zone,
    read_session,
    viewer_zone,
)

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


class CsrfRejected(Exception):
    """A state-changing request without this session's CSRF token: refused with a 403."""


@dataclass(frozen=True)
class Viewer:
    """Plain values, not ORM rows: an error page rendered after a rollback (which expires
    loaded rows) must still be able to show who is signed in."""

    request: Request
    tenant_id: str
    tenant_name: str
    policy: TenantPolicy
    session: WebSession
    zone: ZoneInfo

    def render(self, name: str, *, status_code: int = 200, **context: Any) -> Response:
        context = {**page_context(self.request, self), **context}
        return render(self.request, name, context, status=status_code)


def page_context(request: Request, viewer: Viewer | None) -> dict[str, Any]:
    return {
        "viewer": viewer,
        "zone": viewer.zone if viewer else viewer_zone(request),
        # Nothing known yet: app.js reports the browser's zone and reloads once.
        "zone_unknown": chosen_zone(request) is None and browser_zone(request) is None,
        "csrf_token": viewer.session.csrf_token if viewer else "",
        "current_path": request.url.path,
    }


async def current_viewer(request: Request, db: SessionDep, runtime: RuntimeDep) -> Viewer:
    session = read_session(request, runtime.settings)
    if session is None or session.token is None:
        raise SignInRequired
    try:
        tenant, key = await resume_session(db, session.token, now=runtime.clock.now())
    except Unauthorized:
        # Signed out, expired, or its key revoked: a copied cookie is worth nothing either.
        raise SignInRequired from None
    set_actor(dashboard_actor(key.id))
    record_key_use(runtime, key)
    bind_tenant(tenant.id)
    viewer = Viewer(
        request, tenant.id, tenant.name, policy_of(tenant), session, viewer_zone(request)
    )
    request.state.viewer = viewer  # for error pages rendered outside the handler
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def record_key_use(runtime: Runtime, key: ApiKey) -> None:
    """Note the key's use like the API does: in memory, written in batches (keyuse.py)."""
    key_uses_of(runtime).note(key.id, key.last_used_at, runtime.clock.now())


async def submitted_csrf_tokens(request: Request) -> list[str]:
    """The token from the htmx header and from the form field (a form posted without htmx
    carries only the field)."""
    tokens = [request.headers.get(CSRF_HEADER, "")]
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        field = (await request.form()).get(CSRF_FIELD)
        tokens.append(field if isinstance(field, str) else "")
    return [token for token in tokens if token]


async def acting_viewer(request: Request, viewer: ViewerDep) -> Viewer:
    if not any(viewer.session.accepts(t) for t in await submitted_csrf_tokens(request)):
        raise CsrfRejected
    return viewer


# For every state-changing route: a signed-in viewer whose request carries the CSRF token.
ActorDep = Annotated[Viewer, Depends(acting_viewer)]
