"""The OpenAPI document says everything (issue 17): what each operation does, an example,
every problem it can answer with, and 401 exactly where an API key is needed."""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Response
from pydantic import BaseModel

from caretime.app import create_app
from caretime.booking import router as booking
from caretime.booking.errors import ProviderNotFound, RangeTooLong, VisitTypeNotFound
from caretime.booking.schemas import Limit, SlotPage, SlotSearch
from caretime.config import Settings
from caretime.errors import InvalidInput, Unauthorized
from caretime.openapi import complete_openapi, documents_query, problems
from caretime.tenancy.auth import (
    PolicyReadWithDep,
    TenantDep,
    current_tenant,
    policy_read_with,
)
from caretime.tenancy.service import StoredPolicyInvalid

# /health/ready asks for the operator (metrics) token instead, when one is set: a 401 too.
UNAUTHENTICATED = {
    "/health",
    "/webhooks/twilio/sms",
    "/webhooks/twilio/status",
    "/webhooks/twilio/amd",
    "/webhooks/twilio/gather",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(env="test", database_url="sqlite+aiosqlite:///unused.db", workers=0)
    app: FastAPI = create_app(settings)
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return _resolve(document, document["components"]["schemas"][ref.rsplit("/", 1)[1]])


def _has_example(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    if any("example" in p or "examples" in p for p in operation.get("parameters", [])):
        return True
    contents = [
        *operation.get("requestBody", {}).get("content", {}).values(),
        *(c for r in operation["responses"].values() for c in r.get("content", {}).values()),
    ]
    return any(
        "example" in media or "examples" in media
        or "examples" in _resolve(document, media.get("schema", {}))
        for media in contents
    )  # fmt: skip


def test_every_operation_says_what_it_does_with_an_example(document: dict[str, Any]) -> None:
    operations = _operations(document)
    undescribed = [f"{m} {p}" for m, p, op in operations if not op.get("description")]
    unexampled = [f"{m} {p}" for m, p, op in operations if not _has_example(document, op)]
    assert (undescribed, unexampled) == ([], [])


def test_401_exactly_where_an_api_key_is_needed(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        needs_key = path not in UNAUTHENTICATED
        assert ("401" in operation["responses"]) == needs_key, f"{method} {path}"


def test_every_problem_response_names_its_problem_types(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and status != "503":
                types = response.get("x-problem-types")
                assert types, f"{method} {path} {status}"
                assert all(t.startswith("urn:caretime:problem:") for t in types)
                assert "application/problem+json" in response["content"]


@pytest.mark.parametrize(
    ("method", "path", "status", "problem"),
    [
        ("post", "/reservations", "409", "slot-taken"),
        ("post", "/reservations", "422", "idempotency-key-reused"),
        ("post", "/reservations/{reservation_id}/confirm", "409", "invalid-transition"),
        ("get", "/slots", "400", "range-too-long"),
        ("post", "/calls/{call_id}/dispatch", "422", "outside-calling-window"),
        ("delete", "/calls/{call_id}", "409", "call-already-started"),
        ("post", "/shifts/{shift_id}/fanout", "409", "shift-not-open"),
        ("get", "/tenants/me/policy", "422", "stored-policy-invalid"),
        ("post", "/webhooks/twilio/status", "403", "invalid-signature"),
        ("post", "/webhooks/twilio/gather", "403", "invalid-signature"),
        ("post", "/simulator/calls/{message_id}/digits", "409", "call-not-listening"),
    ],
)
def test_specific_problems_are_documented(
    document: dict[str, Any], method: str, path: str, status: str, problem: str
) -> None:
    response = document["paths"][path][method]["responses"][status]
    assert f"urn:caretime:problem:{problem}" in response["x-problem-types"]


def test_schedule_items_have_a_schema(document: dict[str, Any]) -> None:
    body = document["paths"]["/schedule"]["post"]["requestBody"]["content"]["application/json"]
    items = _resolve(document, body["schema"])["items"]
    item = _resolve(document, items)
    assert {"name", "phone"} <= set(item["required"])
    assert {"scheduled", "tz"} <= set(item["properties"])


async def test_the_served_document_is_the_completed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert "401" not in served["paths"]["/health"]["get"]["responses"]
    assert "x-problem-types" in served["paths"]["/calls/{call_id}"]["get"]["responses"]["404"]


def test_slots_reading_its_own_query_is_documented_as_fastapi_documents_the_model(
    document: dict[str, Any],
) -> None:
    """GET /slots reads SlotSearch from the query itself (query_models.QueryModel); its
    operation is, key order and all, the one FastAPI writes for a handler taking it."""
    reference = FastAPI()

    @reference.get(
        "/slots",
        tags=["booking"],
        response_model=SlotPage,
        responses=problems(ProviderNotFound, VisitTypeNotFound, RangeTooLong, InvalidInput),
        description=inspect.cleandoc(booking.get_slots.__doc__ or ""),
    )
    async def get_slots(
        tenant: TenantDep, policies: PolicyReadWithDep, search: Annotated[SlotSearch, Query()]
    ) -> Response:
        raise AssertionError("documented, never called")

    complete_openapi(
        reference, {current_tenant: [Unauthorized], policy_read_with: [StoredPolicyInvalid]}
    )
    expected = reference.openapi()["paths"]["/slots"]
    assert json.dumps(document["paths"]["/slots"]) == json.dumps(expected)


class _Page(BaseModel):
    limit: Limit = 10
    tag: list[str] | None = None


def test_a_query_model_follows_the_path_parameters_as_fastapi_puts_it() -> None:
    """documents_query on a route with a path parameter and a body: the model's parameters
    after the path's, before the body, as FastAPI writes them for the model taken."""
    ours, theirs = FastAPI(), FastAPI()

    @ours.post("/things/{thing_id}", operation_id="find", summary="Find")
    @documents_query(_Page)
    async def find(thing_id: str, body: dict[str, int]) -> None:
        """Things."""

    @theirs.post("/things/{thing_id}", operation_id="find", summary="Find")
    async def find_paged(
        thing_id: str, body: dict[str, int], page: Annotated[_Page, Query()]
    ) -> None:
        """Things."""

    for app in (ours, theirs):
        complete_openapi(app, {})
    assert json.dumps(ours.openapi()["paths"]) == json.dumps(theirs.openapi()["paths"])
