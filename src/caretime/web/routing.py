"""The dashboard's route class: turns a missing session into a redirect to sign-in and
caretime errors into HTML (a page, or an alert that htmx swaps in) instead of problem+json."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from caretime.errors import CaretimeError
from caretime.web.auth import CsrfRejected, SignInRequired, page_context
from caretime.web.rendering import is_htmx, render

SIGN_IN_PATH = "/ui/signin"
Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class WebRoute(APIRoute):
    def get_route_handler(self) -> Endpoint:
        handle = super().get_route_handler()

        async def handle_for_browsers(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except CsrfRejected:
                return error_response(
                    request, 403, "Form expired", "This form is stale or forged; reload the page."
                )
            except CaretimeError as exc:
                return error_response(request, exc.status, exc.title, exc.detail)
            except RequestValidationError as exc:
                return error_response(request, 422, "Check the form", _validation_detail(exc))

        return handle_for_browsers


def web_router() -> APIRouter:
    return APIRouter(route_class=WebRoute, include_in_schema=False)


def sign_in_redirect(request: Request) -> Response:
    target = f"{SIGN_IN_PATH}?next={quote(_return_path(request), safe='/')}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _return_path(request: Request) -> str:
    return request.url.path if request.method == "GET" else "/"


def error_response(request: Request, status: int, title: str, detail: str) -> Response:
    context = {
        **page_context(request, getattr(request.state, "viewer", None)),
        "title": title,
        "detail": detail,
        "status": status,
    }
    if is_htmx(request):
        # Show the problem where the viewer is, instead of replacing the part they acted on.
        headers = {"HX-Retarget": "#alerts", "HX-Reswap": "innerHTML"}
        return render(request, "_alert.html", context, status=status, headers=headers)
    return render(request, "error.html", context, status=status)


def _validation_detail(exc: RequestValidationError) -> str:
    fields = [str(err["loc"][-1]) for err in exc.errors() if err.get("loc")]
    return "Please check: " + ", ".join(dict.fromkeys(fields)) if fields else "Invalid input."
