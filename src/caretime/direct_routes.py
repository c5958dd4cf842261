"""A hot route answered without FastAPI's request handling: its dependencies called by a
function of the route's own, in the order FastAPI calls them, then its endpoint itself.

For `GET /slots` FastAPI's share of a request (solving the key and policy dependencies,
three exit stacks and the route's exception wrapper around the endpoint, the scan of the
domain's routes) cost more than the search's own Python (docs/benchmarks.md, "slots5").
The FastAPI route stays what the OpenAPI document describes and what every other method
of its path meets (a 405 is FastAPI's); the direct route goes first in the app's routes
and matches only the route's exact path and methods. What it raises is rendered by the
app's exception handlers, as the route's would be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

Answer = Callable[[Request], Awaitable[Response]]

# Endpoint → the function that answers its route directly.
_ANSWERS: dict[Callable[..., Any], Answer] = {}


def answers_directly(endpoint: Callable[..., Any]) -> Callable[[Answer], Answer]:
    """Registers the decorated function as `endpoint`'s route's direct answer. It must give
    the response FastAPI would give: the endpoint's dependencies called as FastAPI calls
    them (same functions, same order), then the endpoint."""

    def register(answer: Answer) -> Answer:
        _ANSWERS[endpoint] = answer
        return answer

    return register


def serve_directly(app: FastAPI) -> None:
    """Every registered route of `app` (without path parameters) answered directly, ahead of
    the app's other routes."""
    routes = [context.original_route for context in iter_route_contexts(app.routes)]
    for route in routes:
        if isinstance(route, APIRoute) and route.endpoint in _ANSWERS:
            if route.param_convertors:
                raise TypeError(f"{route.path}: a direct route has no path parameters")
            app.router.routes.insert(0, DirectRoute(route, _ANSWERS[route.endpoint]))


class DirectRoute(BaseRoute):
    """`route`'s exact path and methods, answered by `answer` (see the module's docstring)."""

    def __init__(self, route: APIRoute, answer: Answer) -> None:
        self.route, self.answer = route, answer
        self.path_format = route.path_format
        self.methods = frozenset(route.methods or ())

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["method"] in self.methods
            and get_route_path(scope) == self.path_format
        ):
            # What FastAPI puts in the scope for the route: metrics and logs name it.
            route = self.route
            return Match.FULL, {"endpoint": route.endpoint, "path_params": {}, "route": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(Request(scope, receive, send))
        await response(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        # The FastAPI route behind it answers for the name.
        raise NoMatchFound(name, path_params)
