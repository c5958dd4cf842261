"""Route matching through IndexedRouter finds what FastAPI alone finds: the route, a 405 for
another method, a 404 for a path no router has, and a route whose first segment is a
parameter still matches any path."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from caretime.routeindex import first_segment, indexed


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
