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

Inside a router whose segment matched, FastAPI tries each of its routes (and included
routers) in turn, twice a request (to find the router, then to handle the request), each try
with its scope bookkeeping: `GET /slots` tried ~15 routes of `/providers` and
`/reservations` first. `include_indexed` includes the router so that only the routes that
could match the path's first segment are tried, in their order (docs/benchmarks.md, "fw3").
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import _IncludedRouter, iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import Match, Route
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
    _literals: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ("",))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        segments = self._segments
        if segments is None:
            segments = self._segments = segments_of(iter_route_contexts(self.routes))
            self._literals = literals_of(iter_route_contexts(self.routes))
        path = get_route_path(scope)
        if _ANY not in segments and first_segment(path) not in segments:
            return Match.NONE, {}
        # Then by the routes' literal text: `/calls/{id}` is no `/calls/series...` route's.
        exact, prefixes = self._literals
        if path not in exact and not path.startswith(prefixes):
            return Match.NONE, {}
        return super().matches(scope)


def segments_of(contexts: Any) -> frozenset[str]:
    """The first segments of the routes' paths, `_ANY` for one that could match any path."""
    segments = set()
    for context in contexts:
        path = getattr(context, "path_format", None)
        if not isinstance(path, str) or not path.startswith("/"):
            return frozenset({_ANY})
        segment = first_segment(path)
        segments.add(_ANY if _ANY in segment else segment)
    return frozenset(segments)


def literals_of(contexts: Any) -> tuple[frozenset[str], tuple[str, ...]]:
    """What a path must be (a route without parameters: its pattern is its whole text) or
    begin with (the text before a route's first parameter; a mount's path) to match one of
    the routes."""
    exact, prefixes = set(), set()
    for context in contexts:
        path = getattr(context, "path_format", None)
        if not isinstance(path, str):
            return frozenset(), ("",)
        if "{" in path:
            prefixes.add(path[: path.index("{")])
        elif isinstance(getattr(context, "original_route", None), Route):
            exact.add(path)
        else:
            prefixes.add(path)
    return frozenset(exact), tuple(sorted(prefixes))


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


def include_indexed(app: FastAPI, router: APIRouter) -> None:
    """`app.include_router(indexed(router))`, the inclusion trying only the routes that could
    match a path's first segment (see the module's docstring)."""
    app.include_router(indexed(router))
    included = app.router.routes[-1]
    if type(included) is not _IncludedRouter:  # a FastAPI that includes otherwise: as is
        return
    app.router.routes[-1] = _SegmentedInclusion(
        original_router=included.original_router, include_context=included.include_context
    )


class _SegmentedInclusion(_IncludedRouter):
    """FastAPI's inclusion of a router, whose scan for a request's route (`_match`, called to
    find the router, then again to handle the request) sees only the candidates whose
    paths' first segments include the path's own, or could match any path: the others
    cannot match it. Their order is kept, so the route found (or the 405 or 404) is the
    same."""

    _index: tuple[list[Any], dict[str, list[Any]]] | None = None

    def _match(self, scope: Scope) -> Any:
        token = _scanned.set((self, self._candidates_for(first_segment(get_route_path(scope)))))
        try:
            return super()._match(scope)
        finally:
            _scanned.reset(token)

    def effective_candidates(self) -> Any:
        scanning, chosen = _scanned.get()  # set while an inclusion scans (see _match)
        return chosen if scanning is self else super().effective_candidates()

    def _candidates_for(self, segment: str) -> list[Any]:
        """The candidates a path with `segment` could match. FastAPI's own list is asked for
        once a scan, as FastAPI asks (it checks then whether the routes changed, walking
        the included routers: what the scan's `effective_candidates` no longer repeats)."""
        every = super().effective_candidates()
        index = self._index
        if index is None or index[0] is not every:
            index = self._index = (every, _by_segment(every))
        return index[1].get(segment, index[1][_ANY])


# The candidates a `_SegmentedInclusion` scans for the request, while it scans.
_scanned: ContextVar[tuple[object, list[Any]]] = ContextVar("scanned", default=(None, []))


def _by_segment(candidates: list[Any]) -> dict[str, list[Any]]:
    """For each first segment a candidate has, the candidates that could match a path with
    it, in order; under `_ANY`, those that could match any path (for other segments)."""
    segments = [segments_of(_contexts(candidate)) for candidate in candidates]
    named = {segment for owned in segments for segment in owned}
    return {
        segment: [
            c
            for c, owned in zip(candidates, segments, strict=True)
            if segment in owned or _ANY in owned
        ]
        for segment in named | {_ANY}
    }


def _contexts(candidate: Any) -> Any:
    if isinstance(candidate, _IncludedRouter):
        return list(candidate.effective_route_contexts())
    return [candidate]
