"""Route matching that skips, at once, the routers a path cannot belong to.

FastAPI matches a request by asking every included router in turn, and a router by trying
each of its routes' patterns (a few microseconds each, with FastAPI's scope bookkeeping).
`GET /calls/{id}` sits behind ~60 routes of other domains: matching it cost ~0.3 ms, a third
of what a bare FastAPI endpoint's whole request costs on this machine. Every caretime path
starts with a literal segment (`/calls/...`, `/slots`, `/providers/...`), so each domain's
router is included as an IndexedRouter (the same router, with a check) that first asks
"does any of my routes start with this segment?" and answers "no match" at once otherwise;
the routes are then tried as before, in the same order, so what matches (and a 404 or 405)
is what FastAPI alone would give.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

# A route whose first segment is a parameter (or has no path) could match any path.
_ANY = "{"


def first_segment(path: str) -> str:
    """'/calls/abc' → 'calls'; '/' → ''."""
    return path[1:].partition("/")[0]


class IndexedRouter(APIRouter):
    """One domain's router with the first-segment check (`indexed(router)`); include it in
    the app without a prefix. Its index is built from the routes on the first request, when
    every route of the process has been declared."""

    _segments: frozenset[str] | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        segments = self._segments
        if segments is None:
            segments = self._segments = self._first_segments()
        if _ANY not in segments and first_segment(get_route_path(scope)) not in segments:
            return Match.NONE, {}
        return super().matches(scope)

    def _first_segments(self) -> frozenset[str]:
        segments = set()
        for context in iter_route_contexts(self.routes):
            path = getattr(context, "path_format", None)
            if not isinstance(path, str) or not path.startswith("/"):
                return frozenset({_ANY})
            segment = first_segment(path)
            segments.add(_ANY if _ANY in segment else segment)
        return frozenset(segments)


_built: dict[int, tuple[APIRouter, IndexedRouter]] = {}


def indexed(router: APIRouter) -> IndexedRouter:
    """`router` behind a first-segment check (see the module's docstring): an IndexedRouter
    sharing the router's own state (its routes, prefix, tags, included routers), not one
    wrapping it. FastAPI matches each level of included routers again when it hands the
    request down, so a wrapper's level cost every routed request ~20 µs (docs/benchmarks.md,
    "E"). Built once per process and shared by every app: it holds nothing of an app
    (endpoints read the runtime from `request.app`)."""
    built = _built.get(id(router))
    if built is None or built[0] is not router:  # (a router of a test may reuse an id)
        twin = object.__new__(IndexedRouter)
        twin.__dict__.update(vars(router))
        built = _built[id(router)] = (router, twin)
    return built[1]
