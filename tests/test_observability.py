"""Logs are structured, carry request and tenant ids, and never names, phones or bodies."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from caretime.observability import JsonFormatter, json_line, mask_phone_like
from tests.support import logging_as_served

PATIENT = "Jane Roe"
PHONE = "+12065550100"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)


async def test_logs_are_json_with_ids_and_without_phi(
    app: FastAPI, client: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    async def explode(name: str, phone: str) -> None:
        raise RuntimeError(f"could not call {name} at {phone}")

    app.add_api_route("/test/explode", explode)
    await client.get("/test/explode", params={"name": PATIENT, "phone": PHONE})
    await client.patch("/tenants/me/policy", json={"calling": {"default_tz": PATIENT}})
    await client.get("/tenants/me")

    entries = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert any(e["event"] == "unhandled_error" and "RuntimeError" in e["exc"] for e in entries)
    requests = [e for e in entries if e["event"] == "request"]
    assert requests
    assert all(e["request_id"] for e in requests)
    assert any(e.get("tenant_id") for e in requests)
    text = json_log.getvalue()
    assert PATIENT not in text
    assert PHONE not in text
    assert "2065550100" not in text


@pytest.mark.parametrize("text", ["call +1 (206) 555-0100 now", "to 206-555-0100", "+442079460958"])
def test_phone_like_text_is_masked(text: str) -> None:
    masked = mask_phone_like(text)
    assert "555" not in masked
    assert "2079460958" not in masked
    assert "[redacted]" in masked


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/tenants/me")
    metrics = (await client.get("/metrics")).text
    assert 'caretime_http_requests_total{method="GET",route="/tenants/me",status="200"}' in metrics
    assert "caretime_http_request_seconds_bucket" in metrics


@pytest.mark.parametrize(
    "text", ["listening on 127.0.0.1:8000", "day 2026-03-08 done", "job 1234 took 56 ms"]
)
def test_ids_addresses_and_dates_stay_readable(text: str) -> None:
    assert mask_phone_like(text) == text


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()


@given(st.dictionaries(st.text(), _SCALARS | st.lists(st.integers(), max_size=2)))
def test_a_json_line_is_what_json_dumps_writes(entry: dict[str, object]) -> None:
    """Log searches match json.dumps's spacing and escapes: the fast path keeps them, and
    anything it does not write itself (lists, NaN) goes to json.dumps."""
    assert json_line(entry) == json.dumps(entry, default=str)


@pytest.fixture
def served_log() -> Iterator[logging.StreamHandler[io.StringIO]]:
    with logging_as_served("INFO") as handler:
        yield handler


def _request_lines(stream: io.StringIO) -> list[str]:
    """The request lines logged, their time and duration (which differ run to run) blanked."""
    lines = [line for line in stream.getvalue().splitlines() if '"event": "request"' in line]
    stream.seek(0)
    stream.truncate()
    return [
        re.sub(r'"ms": [0-9.e+-]+', '"ms": 0', re.sub('"ts": "[^"]*"', '"ts": ""', line))
        for line in lines
    ]


async def test_a_request_line_written_directly_is_the_records_line(
    client: httpx.AsyncClient, served_log: logging.StreamHandler[io.StringIO]
) -> None:
    """With configure_logging's handler alone, a request's line is written without a log
    record; it must be the line the record would have given, field for field."""
    handler, stream = served_log, served_log.stream
    logging.getLogger().handlers[:] = [handler]  # pytest's capture adds its own for the call
    headers = {"X-Request-ID": "req-1"}
    await client.get("/tenants/me", headers=headers)
    await client.get("/calls/call_0000000000", headers=headers)
    direct = _request_lines(stream)
    handler.addFilter(lambda record: True)  # anything configured beside it: records again
    await client.get("/tenants/me", headers=headers)
    await client.get("/calls/call_0000000000", headers=headers)
    assert _request_lines(stream) == direct
    assert len(direct) == 2
    entry = json.loads(direct[0])
    assert (entry["route"], entry["status"], entry["request_id"]) == ("/tenants/me", 200, "req-1")
    assert entry["tenant_id"]
