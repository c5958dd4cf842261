"""`GET /slots` is answered by its direct route (direct_routes), not by FastAPI's handling of
the route: every answer must be the one FastAPI's route gives, byte for byte — the search,
each 401 of the key check, each 404 and 422 of the search, a revoked key, another method's
405 — and the request is counted and logged under its route as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts

from caretime import direct_routes as direct_routes_module
from caretime.direct_routes import DirectRoute, answers_directly, serve_directly
from caretime.observability import HTTP_REQUESTS
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, make_reservation
from tests.support import bearer, direct_route, direct_routes, make_tenant, without_direct_routes

DAY = "2026-03-10"
SEARCHES = [
    f"/slots?provider_id=dr-jekyll&start={DAY}&end={DAY}",
    f"/slots?provider_id=dr-jekyll&start={DAY}&end={DAY}&limit=3",
    f"/slots?start={DAY}T13:00:00Z&end={DAY}T18:00:00Z",
    "/slots",
    # Problems the search itself raises: unknown provider and visit type, a range too long,
    # an end before the start, a bad query (the model's 422), a bad cursor.
    f"/slots?provider_id=nobody&start={DAY}&end={DAY}",
    f"/slots?provider_id=dr-jekyll&visit_type=none&start={DAY}&end={DAY}",
    "/slots?provider_id=dr-jekyll&start=2026-03-01&end=2026-05-01",
    f"/slots?provider_id=dr-jekyll&start={DAY}T10:00:00Z&end={DAY}T09:00:00Z",
    "/slots?limit=0&start=yesterday",
    f"/slots?provider_id=dr-jekyll&start={DAY}&end={DAY}&cursor=not-a-cursor",
]
BAD_CREDENTIALS = [
    {},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer short"},
    {"Authorization": "Bearer ct_this_key_does_not_exist"},
]
OTHER_REQUESTS = [("POST", "/slots"), ("DELETE", "/slots"), ("HEAD", "/slots"), ("GET", "/slots/")]


@pytest.fixture
def answered(app: FastAPI) -> Iterator[list[str]]:
    """The requests the direct route answered (so a comparison is not FastAPI against itself)."""
    route = direct_route(app, "/slots")
    answer, seen = route.answer, []

    async def counted(request: Request) -> Response:
        seen.append(request.url.path)
        return await answer(request)

    route.answer = counted
    yield seen
    route.answer = answer


async def _answer(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str | None, str | None, bytes]:
    """Status, content type, challenge and body (its request id, each request's own, left out)."""
    response = await client.request(method, path, headers=headers)
    content_type = response.headers.get("content-type")
    body = response.content.replace(response.headers["x-request-id"].encode(), b"<id>")
    return response.status_code, content_type, response.headers.get("www-authenticate"), body


async def _both_ways(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str, **kw: dict[str, str]
) -> tuple[int, str | None, str | None, bytes]:
    """The direct route's answer, checked to be the FastAPI route's."""
    with without_direct_routes(app):
        expected = await _answer(client, method, path, kw.get("headers"))
    assert await _answer(client, method, path, kw.get("headers")) == expected, (method, path)
    return expected


async def _seed(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    windows = [{"date": DAY, "start": "09:00", "end": "12:00"}]
    await make_availability(client, windows=windows)
    await make_reservation(client, slot_start=f"{DAY}T14:00:00Z")


async def test_slots_is_answered_by_its_direct_route(app: FastAPI) -> None:
    route = direct_route(app, "/slots")
    assert route in app.router.routes[: len(direct_routes(app))]
    assert (route.path_format, route.methods) == ("/slots", frozenset({"GET"}))


async def test_searches_and_their_problems_are_fastapis(
    app: FastAPI, client: httpx.AsyncClient, answered: list[str]
) -> None:
    await _seed(client)
    statuses = [(await _both_ways(app, client, "GET", path))[0] for path in SEARCHES]
    assert statuses == [200, 200, 200, 200, 404, 404, 400, 422, 422, 422]
    assert answered == ["/slots"] * len(SEARCHES)  # each once, by the direct route


async def test_refused_keys_and_other_methods_are_fastapis(
    app: FastAPI, anon_client: httpx.AsyncClient, answered: list[str]
) -> None:
    for headers in BAD_CREDENTIALS:
        answer = await _both_ways(app, anon_client, "GET", SEARCHES[0], headers=headers)
        assert answer[:3] == (401, "application/problem+json", "Bearer")
    for method, path in OTHER_REQUESTS:
        await _both_ways(app, anon_client, method, path)
    assert len(answered) == len(BAD_CREDENTIALS)  # the other methods and paths: FastAPI's


async def test_a_revoked_key_is_refused_as_fastapis_route_refuses_it(
    app: FastAPI, anon_client: httpx.AsyncClient, runtime: Runtime, answered: list[str]
) -> None:
    _, key = await make_tenant(runtime, name="acme")
    assert (await _both_ways(app, anon_client, "GET", "/slots", headers=bearer(key)))[0] == 200
    keys = (await anon_client.get("/tenants/me/keys", headers=bearer(key))).json()["items"]
    await anon_client.delete(f"/tenants/me/keys/{keys[0]['id']}", headers=bearer(key))
    refused = await _both_ways(app, anon_client, "GET", "/slots", headers=bearer(key))
    assert refused[0] == 401
    assert b"revoked" in refused[3]
    assert answered == ["/slots"] * 2  # both answers the direct route's


async def test_a_direct_answer_is_counted_under_its_route(
    client: httpx.AsyncClient, answered: list[str]
) -> None:
    counted = HTTP_REQUESTS.labels("GET", "/slots", "200")
    before = counted._value.get()
    assert (await client.get("/slots")).status_code == 200
    assert counted._value.get() == before + 1
    assert answered == ["/slots"]  # the direct route answered it


async def _tenant() -> str:
    return "t"


async def _audited() -> None:
    return None


async def _endpoint(tenant: Annotated[str, Depends(_tenant)]) -> dict[str, str]:
    return {"tenant": tenant}


@answers_directly(_endpoint, calls=(_tenant,))
async def _endpoint_directly(request: Request) -> Response:
    return JSONResponse(await _endpoint(await _tenant()))


def _app_with(router: APIRouter, **include: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(router, **include)
    return app


def test_a_route_is_answered_directly_only_if_fastapi_would_do_no_more() -> None:
    plain = APIRouter()
    plain.get("/x")(_endpoint)
    app = _app_with(plain)
    serve_directly(app)
    assert isinstance(app.router.routes[0], DirectRoute)
    # Under a prefix or behind another dependency: FastAPI's route alone (the two cases
    # tested of those `serve_directly` refuses; path parameters and a body cap are the others).
    for refused in (
        _app_with(plain, prefix="/v1"),
        _app_with(plain, dependencies=[Depends(_audited)]),
    ):
        with pytest.raises(TypeError, match="/x"):
            serve_directly(refused)


def test_the_registered_routes_are_found_as_fastapi_finds_them(app: FastAPI) -> None:
    """`serve_directly` builds the contexts of the registered routes alone (not every
    route's): each as FastAPI's own `iter_route_contexts` builds it, inclusions and all."""

    def described(context: Any) -> tuple[str, tuple[Any, ...], Any]:
        calls = tuple(dependency.call for dependency in context.dependant.dependencies)
        return context.path_format, calls, context.max_body_size

    ours = [
        described(context) for context, _ in direct_routes_module._registered_contexts(app.routes)
    ]
    fastapis = [
        described(context)
        for context in iter_route_contexts(app.routes)
        if context.endpoint in direct_routes_module._ANSWERS
    ]
    assert sorted(ours, key=repr) == sorted(fastapis, key=repr)
    assert {path for path, _, _ in ours} == {"/slots", "/messages/inbound"}
