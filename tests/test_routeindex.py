"""Route matching through IndexedRouter finds what FastAPI alone finds: the route, a 405 for
another method, a 404 for a path no router has, and a route whose first segment is a
parameter still matches any path."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI, Request

from caretime.routeindex import first_segment, include_indexed, indexed


def _app() -> FastAPI:
    calls, anything = APIRouter(), APIRouter()

    @calls.get("/calls/{call_id}")
    async def get_call(call_id: str) -> dict[str, str]:
        return {"call": call_id}

    @anything.get("/{name}/about")
    async def about(name: str) -> dict[str, str]:
        return {"about": name}

    app = FastAPI()
    app.include_router(indexed(calls))
    app.include_router(indexed(anything))
    return app


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


def test_first_segment() -> None:
    assert first_segment("/calls/abc") == "calls"
    assert first_segment("/slots") == "slots"
    assert first_segment("/") == ""


async def test_the_route_another_method_and_an_unknown_path() -> None:
    async with _client() as client:
        assert (await client.get("/calls/c1")).json() == {"call": "c1"}
        assert (await client.post("/calls/c1")).status_code == 405
        assert (await client.get("/nothing/here/at/all")).status_code == 404


async def test_a_parameter_first_segment_matches_any_path() -> None:
    async with _client() as client:
        assert (await client.get("/zebra/about")).json() == {"about": "zebra"}


async def test_an_indexed_router_keeps_its_prefix_tags_and_included_routers() -> None:
    inner, outer = APIRouter(), APIRouter(prefix="/tenants/me", tags=["tenants"])

    @inner.get("/agents")
    async def agents() -> list[str]:
        return ["a1"]

    outer.include_router(inner)
    app = FastAPI()
    app.include_router(indexed(outer))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/tenants/me/agents")).json() == ["a1"]
        assert (await c.get("/agents")).status_code == 404
    assert app.openapi()["paths"]["/tenants/me/agents"]["get"]["tags"] == ["tenants"]


def _answering(router: APIRouter, method: str, path: str) -> None:
    """A route that answers with its own path and the request's path parameters."""

    async def answer(request: Request) -> str:
        return f"{path} {sorted(request.path_params.items())}"

    router.add_api_route(path, answer, methods=[method], name=f"{method} {path}")


def _mixed_router() -> APIRouter:
    """Routes of several first segments interleaved, an included router of two segments, and
    a route whose first segment is a parameter (shadowing a later route): what an
    inclusion's scan must keep in order."""
    router, nested = APIRouter(), APIRouter()
    _answering(router, "POST", "/providers")
    _answering(router, "GET", "/slots")
    _answering(nested, "GET", "/reservations/{hold_id}/history")
    _answering(nested, "GET", "/providers/{provider_id}/visit-types")
    router.include_router(nested)
    for path in ("/{kind}/first", "/providers/{provider_id}", "/slots/first"):
        _answering(router, "GET", path)
    return router


REQUESTS = [
    ("GET", "/slots"),
    ("POST", "/slots"),
    ("GET", "/providers"),
    ("POST", "/providers"),
    ("GET", "/providers/p1"),
    ("GET", "/providers/p1/visit-types"),
    ("GET", "/reservations/h1/history"),
    ("GET", "/slots/first"),
    ("GET", "/anything/first"),
    ("GET", "/anything"),
    ("GET", "/"),
    ("GET", "/slots/"),
    ("GET", "/slotsx"),
    ("GET", "/providers/"),
    ("GET", "/reservations/h1"),
]


async def test_an_indexed_inclusion_answers_every_request_as_fastapi_alone() -> None:
    """`include_indexed` tries only the routes that could match a path's first segment; the
    route found, the 405 and the 404 are FastAPI's own."""
    plain, segmented = FastAPI(), FastAPI()
    plain.include_router(_mixed_router())
    include_indexed(segmented, _mixed_router())
    answers = []
    for app in (plain, segmented):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = [await client.request(method, path) for method, path in REQUESTS]
        answers.append([(r.status_code, r.text) for r in responses])
    assert answers[0] == answers[1]
    assert answers[1][0] == (200, '"/slots []"')
    assert answers[1][7] == (200, "\"/{kind}/first [('kind', 'slots')]\"")
    assert segmented.openapi() == plain.openapi()


def _calls_routers() -> list[APIRouter]:
    """Two routers of one first segment, as caretime's series and calls: the literal text
    before a path's first parameter decides which one is tried (`/calls/c1` skips the
    series router's routes, `/calls/seriesx` too)."""
    series, calls = APIRouter(), APIRouter()
    _answering(series, "GET", "/calls/series")
    _answering(series, "GET", "/calls/series/{series_id}")
    _answering(series, "DELETE", "/calls/series/{series_id}")
    _answering(calls, "GET", "/calls/{call_id}")
    _answering(calls, "POST", "/calls")
    return [series, calls]


CALL_REQUESTS = [
    ("GET", "/calls/c1"),
    ("GET", "/calls/c1/"),
    ("GET", "/calls/series"),
    ("GET", "/calls/series/"),
    ("GET", "/calls/series/s1"),
    ("DELETE", "/calls/series/s1"),
    ("POST", "/calls/series/s1"),
    ("GET", "/calls/seriesx"),
    ("GET", "/calls"),
    ("POST", "/calls"),
    ("POST", "/calls/"),
    ("GET", "/callsx"),
]


async def test_an_indexed_router_skipped_by_its_literal_text_answers_as_fastapi_alone() -> None:
    plain, segmented = FastAPI(), FastAPI()
    for router in _calls_routers():
        plain.include_router(router)
    for router in _calls_routers():
        segmented.include_router(indexed(router))
    answers = []
    for app in (plain, segmented):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = [await client.request(method, path) for method, path in CALL_REQUESTS]
        answers.append([(r.status_code, r.headers.get("location"), r.text) for r in responses])
    assert answers[0] == answers[1]
    assert answers[1][0][2] == "\"/calls/{call_id} [('call_id', 'c1')]\""
    assert answers[1][7][2] == "\"/calls/{call_id} [('call_id', 'seriesx')]\""
