"""Every error is RFC 9457 problem+json; internals never leak."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/no/such/thing"), 404)


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.put("/health"), 405)


async def test_validation_errors_list_where_and_what(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/tenants/me/policy", content=b"not json", headers={"content-type": "application/json"}
    )
    body = _assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors
    assert all({"loc", "msg"} <= error.keys() for error in errors)


async def test_unhandled_errors_are_500_without_internals(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internal detail: patient Jane Roe +12065550100")

    app.add_api_route("/test/explode", explode)
    with caplog.at_level(logging.ERROR, logger="caretime.errors"):
        response = await client.get("/test/explode")
    body = _assert_problem(response, 500)
    assert "secret" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
    assert any(record.getMessage() == "unhandled_error" for record in caplog.records)


async def test_request_id_is_echoed_and_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
