"""`POST /messages/inbound` is answered by its direct route (messaging.router) for a plain
JSON reply, and by FastAPI's route for anything else: every answer must be the one FastAPI's
route alone gives, byte for byte (each reply's own message id and request id aside) — a
"no" to an offer, an unmatched reply, a repeated Idempotency-Key, each 401 of the key check
and each 422 of the body and header — and a plain reply must be the direct route's own."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from caretime.direct_routes import AnsweredByFastAPI
from caretime.messaging.router import receive_inbound
from caretime.runtime import Runtime
from tests.shifts.support import (
    default_tenant_id,
    make_caregiver,
    make_offer,
    make_shift,
    phone,
)
from tests.support import direct_route, without_direct_routes

PATH = "/messages/inbound"
JSON = {"Content-Type": "application/json"}
NO = b'{"from": "%b", "body": "no", "shift_id": "shift-1"}' % phone(1).encode()
# Plain replies: the direct route answers them itself.
PLAIN = [
    NO,
    b'{"from_phone": "%b", "body": "No thanks"}' % phone(1).encode(),
    b'{"from": "+12065550199", "body": "hello"}',
    b'{"from": "%b", "body": "help"}' % phone(2).encode(),
    '{"from": "+12065550199", "body": "caf\u00e9 \u2603", "site": "n\u00f8rth"}'.encode(),
]
# What FastAPI's route must answer (the direct route hands these over): bodies the model
# refuses, bodies that are not JSON or not an object, other content types (the JSON ones
# FastAPI reads too), no body, an over-long key.
HANDED_OVER: list[tuple[bytes, dict[str, str]]] = [
    (b'{"body": "no"}', JSON),
    (b'{"from": "+12065550199", "body": "%b"}' % (b"x" * 2001), JSON),
    (b'{"from": "+12065550199"', JSON),
    (b"[1, 2]", JSON),
    (b"", JSON),
    (b"\xff\xfe", JSON),
    (NO, {"Content-Type": "text/plain"}),
    (NO, {"Content-Type": "application/json; charset=utf-8"}),
    (NO, {"Content-Type": "application/vnd.api+json"}),
    (NO, {}),
    (NO, {**JSON, "Idempotency-Key": "k" * 201}),
]
BAD_CREDENTIALS = [{}, {"Authorization": "Bearer ct_this_key_does_not_exist"}]


@pytest.fixture
async def offered(runtime: Runtime) -> None:
    tenant_id = await default_tenant_id(runtime)
    for n in (1, 2):
        await make_caregiver(runtime, tenant_id=tenant_id, id=f"cg-{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant_id, id="shift-1")
    await make_offer(runtime, tenant_id=tenant_id, shift_id="shift-1", caregiver_id="cg-1")


@pytest.fixture
def answered(app: FastAPI) -> Iterator[list[str]]:
    """How the direct route answered each request it saw: "direct" or "handed over"."""
    route = direct_route(app, PATH)
    answer, seen = route.answer, []

    async def noted(request: Request) -> Response:
        try:
            response = await answer(request)
        except Exception:
            seen.append("direct")  # it raised (a 401): the app's handlers render it
            raise
        seen.append("handed over" if isinstance(response, AnsweredByFastAPI) else "direct")
        return response

    route.answer = noted
    yield seen
    route.answer = answer


async def _answer(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> tuple[int, str | None, str | None, bytes]:
    """Status, content type, challenge and body (the request's and the reply's ids left out)."""
    response = await client.post(PATH, content=body, headers=headers)
    text = response.content.replace(response.headers["x-request-id"].encode(), b"<id>")
    text = re.sub(rb'"msg_[^"]+"', b'"<message>"', text)
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("www-authenticate"),
        text,
    )


async def _both_ways(app: FastAPI, client: httpx.AsyncClient, body: bytes, **headers: Any) -> Any:
    """The direct route's answer, checked to be FastAPI's route's. The direct route answers
    first: a reply that changes something (a "no" declining its offer) is its to make; the
    same reply again must be answered alike (a repeat changes nothing)."""
    answer = await _answer(client, body, headers)
    with without_direct_routes(app):
        assert await _answer(client, body, headers) == answer, body
    return answer


async def test_plain_replies_are_answered_directly_as_fastapi_answers_them(
    app: FastAPI, client: httpx.AsyncClient, offered: None, answered: list[str]
) -> None:
    for body in PLAIN:
        await _both_ways(app, client, body, **JSON)
    assert answered == ["direct"] * len(PLAIN)
    status, _, _, declined = await _answer(client, NO, JSON)
    assert (status, b'"action":"declined"' in declined) == (200, True)


async def test_a_repeated_key_is_answered_as_fastapis_route_answers_it(
    app: FastAPI, client: httpx.AsyncClient, offered: None, answered: list[str]
) -> None:
    keyed = {**JSON, "Idempotency-Key": "key-1"}
    first = (await client.post(PATH, content=NO, headers=keyed)).json()
    await _both_ways(app, client, NO, **keyed)
    again = (await client.post(PATH, content=NO, headers=keyed)).json()
    assert again["message_id"] == first["message_id"]  # recorded once, whichever answered
    assert answered == ["direct", "direct", "direct"]


async def test_other_bodies_and_headers_are_answered_by_fastapis_route(
    app: FastAPI, client: httpx.AsyncClient, offered: None, answered: list[str]
) -> None:
    for body, headers in HANDED_OVER:
        status, *_ = await _both_ways(app, client, body, **headers)
        read_by_fastapi = headers.get("Content-Type", "").startswith("application/")
        assert status == (200 if body == NO and read_by_fastapi and len(headers) == 1 else 422)
    assert answered == ["handed over"] * len(HANDED_OVER)


async def test_refused_keys_are_refused_as_fastapis_route_refuses_them(
    app: FastAPI, anon_client: httpx.AsyncClient, answered: list[str]
) -> None:
    for credentials in BAD_CREDENTIALS:
        status, *_ = await _both_ways(app, anon_client, NO, **JSON, **credentials)
        assert status == 401
    # A body FastAPI could not read is its 422 before the key check, either way.
    status, *_ = await _both_ways(app, anon_client, b"{", **JSON)
    assert status == 422
    assert answered == ["direct", "direct", "handed over"]


async def test_a_problem_the_endpoint_raises_is_rendered_as_fastapis_route_renders_it(
    app: FastAPI, client: httpx.AsyncClient, answered: list[str]
) -> None:
    """A sender the model accepts but that is no phone number: the desk's 422."""
    status, content_type, *_ = await _both_ways(
        app, client, b'{"from": "not a phone", "body": "no"}', **JSON
    )
    assert (status, content_type) == (422, "application/problem+json")
    assert answered == ["direct"]


async def test_json_nested_past_the_parser_s_depth_is_fastapis_400(
    app: FastAPI, client: httpx.AsyncClient, answered: list[str]
) -> None:
    status, *_ = await _both_ways(app, client, b"[" * 20_000, **JSON)
    assert status == 400
    assert answered == ["handed over"]


async def _cut_short(app: FastAPI, authorization: str) -> tuple[int, bytes]:
    """The status and problem type of a reply whose client hangs up before its body ends."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": NO[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"authorization", authorization.encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": PATH, "raw_path": PATH.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("test", 80)}  # fmt: skip
    await app(scope, receive, send)
    (start,) = [message for message in sent if message["type"] == "http.response.start"]
    body = b"".join(message.get("body", b"") for message in sent if "body" in message)
    return start["status"], re.sub(rb'"request_id":"[^"]*"', b"", body)


async def test_a_client_gone_before_its_body_ends_is_answered_as_fastapis_route_answers_it(
    app: FastAPI, client: httpx.AsyncClient, answered: list[str]
) -> None:
    with without_direct_routes(app):
        expected = await _cut_short(app, client.headers["authorization"])
    assert await _cut_short(app, client.headers["authorization"]) == expected
    assert expected[0] == 400
    assert answered == ["direct"]


def test_the_direct_answer_passes_every_parameter_the_endpoint_takes() -> None:
    """It calls the endpoint by position: a parameter added to the route must be added there
    too (this fails first), or FastAPI's route would read something the direct one skips."""
    taken = list(inspect.signature(receive_inbound).parameters)
    assert taken == ["reply", "tenant", "clock", "runtime", "idempotency_key"]
