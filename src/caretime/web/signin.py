"""Sign in with an API key, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from caretime.deps import RuntimeDep, SessionDep, SettingsDep
from caretime.errors import Unauthorized
from caretime.runtime import Runtime
from caretime.tenancy.keyshape import key_shape_problem
from caretime.tenancy.models import ApiKey
from caretime.tenancy.service import authenticate
from caretime.tenancy.sessions import end_session, open_session
from caretime.web.auth import ActorDep, CsrfRejected, page_context, record_key_use
from caretime.web.rendering import render
from caretime.web.routing import SIGN_IN_PATH, web_router
from caretime.web.session import WebSession, clear_session, read_session, write_session

router = web_router()


@router.get(SIGN_IN_PATH)
async def sign_in_form(
    request: Request, settings: SettingsDep, next: Annotated[str, Query()] = "/"
) -> Response:
    session = read_session(request, settings) or WebSession.anonymous()
    response = _sign_in_page(request, session, next_path=next)
    write_session(response, session, settings)
    return response


@router.post(SIGN_IN_PATH)
async def sign_in(
    request: Request,
    db: SessionDep,
    runtime: RuntimeDep,
    api_key: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    settings = runtime.settings
    session = read_session(request, settings)
    if session is None or not session.accepts(csrf_token):
        raise CsrfRejected
    key = api_key.strip()
    try:
        problem = key_shape_problem(key)
        if problem is not None:
            raise Unauthorized(problem)
        _tenant, api_key_row = await authenticate(db, key)
    except Unauthorized as exc:
        return _sign_in_page(request, session, next_path=next, error=exc.detail, status=401)
    record_key_use(runtime, api_key_row)
    token = await _replace_session(db, runtime, session, api_key_row)
    response = RedirectResponse(_safe_next(next), status_code=303)
    write_session(response, session.signed_in(token), settings)
    return response


async def _replace_session(
    db: AsyncSession, runtime: Runtime, session: WebSession, key: ApiKey
) -> str:
    """A new server-side session for `key`; signing in again ends the one the cookie held."""
    if session.token is not None:
        await end_session(db, session.token)
    return await open_session(db, key, now=runtime.clock.now())


@router.post("/ui/signout")
async def sign_out(viewer: ActorDep, db: SessionDep) -> Response:
    if viewer.session.token is not None:
        await end_session(db, viewer.session.token)
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    clear_session(response)
    return response


def _sign_in_page(
    request: Request,
    session: WebSession,
    *,
    next_path: str,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        **page_context(request, None),
        "csrf_token": session.csrf_token,
        "next": _safe_next(next_path),
        "error": error,
    }
    return render(request, "signin.html", context, status=status)


def _safe_next(path: str) -> str:
    """Only paths on this site: `next` must never send a signed-in viewer elsewhere."""
    if path.startswith("/") and not path.startswith(("//", "/\\")):
        return path
    return "/"
