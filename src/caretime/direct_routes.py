"""A hot route answered without FastAPI's request handling: its dependencies called by a
function of the route's own, in the order FastAPI calls them, then its endpoint itself.

For `GET /slots` FastAPI's share of a request (solving the key and policy dependencies,
three exit stacks and the route's exception wrapper around the endpoint, the scan of the
domain's routes) cost more than the search's own Python (docs/benchmarks.md, "slots5");
for a "no" to a shift offer (`POST /messages/inbound`) a fifth of it ("inbound2").
The FastAPI route stays what the OpenAPI document describes and what every other method
of its path meets (a 405 is FastAPI's); the direct route goes first in the app's routes
and matches only the route's exact path and methods. What it raises is rendered by the
app's exception handlers, as the route's would be. A direct answer may decline a request it
does not take as it is (`AnsweredByFastAPI`: FastAPI's route answers it, its body replayed),
so that whatever FastAPI would refuse is refused in FastAPI's words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, NamedTuple

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, RouteContext, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Message, Receive, Scope, Send

Answer = Callable[[Request], Awaitable[Response]]


class _Registered(NamedTuple):
    answer: Answer
    calls: tuple[Callable[..., Any], ...]  # the dependencies it calls, in order


# Endpoint → the function that answers its route directly.
_ANSWERS: dict[Callable[..., Any], _Registered] = {}


def answers_directly(
    endpoint: Callable[..., Any], *, calls: tuple[Callable[..., Any], ...]
) -> Callable[[Answer], Answer]:
    """Registers the decorated function as `endpoint`'s route's direct answer. It must give
    the response FastAPI would give: the endpoint's dependencies `calls` called as FastAPI
    calls them (same functions, same order), then the endpoint. `serve_directly` refuses a
    route whose FastAPI handling would do more (another dependency, a prefix, a body cap)."""

    def register(answer: Answer) -> Answer:
        _ANSWERS[endpoint] = _Registered(answer, calls)
        return answer

    return register


def serve_directly(app: FastAPI) -> None:
    """Every registered route of `app` answered directly, ahead of the app's other routes."""
    for context, (answer, calls) in list(_registered_contexts(app.routes)):  # then inserted
        route = _served_as_registered(context, calls)
        app.router.routes.insert(0, DirectRoute(route, answer))


def _registered_contexts(
    routes: Iterable[BaseRoute], included: _IncludedRouter | None = None
) -> Iterator[tuple[RouteContext, _Registered]]:
    """The registered routes among `routes` (those of `included`, when given) as
    `iter_route_contexts` gives them, with what their inclusions add, each built alone:
    building every route's, as that does (FastAPI builds them route by route when first
    used), cost ~0.2 s an app, which every test that makes an app paid."""
    for route in routes:
        if isinstance(route, _IncludedRouter):
            if included is not None:  # its inclusion inside this one, as FastAPI's
                inner = included.include_context.combine(route.include_context)
                route = _IncludedRouter(route.original_router, inner)
            yield from _registered_contexts(route.original_router.routes, route)
        elif isinstance(route, APIRoute) and route.endpoint in _ANSWERS:
            effective = included._build_effective_context(route) if included else None
            yield RouteContext(route, effective), _ANSWERS[route.endpoint]


def _served_as_registered(context: RouteContext, calls: tuple[Callable[..., Any], ...]) -> APIRoute:
    """The FastAPI route behind `context`, if answering it directly skips nothing FastAPI
    would do for it: no path parameters, no prefix it was included under, no dependency but
    `calls` (a router's or the app's `dependencies=` would be among FastAPI's), no body cap."""
    route = context.original_route
    if not isinstance(route, APIRoute) or route.param_convertors:
        raise TypeError(
            f"{context.path}: a direct route is a FastAPI route without path parameters"
        )
    if context.path_format != route.path_format:
        raise TypeError(f"{context.path}: a direct route is not included under a prefix")
    called = tuple(dependency.call for dependency in context.dependant.dependencies)
    if called != calls or context.max_body_size is not None:
        names = [getattr(call, "__name__", repr(call)) for call in called]
        raise TypeError(
            f"{context.path}: FastAPI's route would call {names}; not answered directly"
        )
    return route


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


class AnsweredByFastAPI(Response):
    """FastAPI's route answers the request, given back the body the direct answer read."""

    def __init__(self, route: APIRoute, body: bytes) -> None:
        super().__init__()
        self.route, self.read = route, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        given: list[bool] = []

        async def replayed() -> Message:
            if given:
                return await receive()  # after the body: the client's own (a disconnect)
            given.append(True)
            return {"type": "http.request", "body": self.read, "more_body": False}

        await self.route.handle(scope, replayed, send)
