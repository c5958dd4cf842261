"""No input can break a tenant (issue 19): schemathesis fuzzes the policy and booking
endpoints with valid and deliberately invalid data; nothing may be a server error, and every
response must be one the OpenAPI document declares. Stored values are then still usable."""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer
from tests.support import TEST_API_KEY, bearer

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
HOSTILE_TARGETS = r"^/(tenants/me/policy|providers|slots|reservations|appointments)"


def _fuzz(operation: schemathesis.APIOperation, base_url: str, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=bearer(TEST_API_KEY), checks=CHECKS)

    run()


def test_policy_and_booking_survive_hostile_input(live_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    schema = schema.include(path_regex=HOSTILE_TARGETS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures = []
    for operation in operations:
        for mode in GenerationMode:
            try:
                _fuzz(operation, live_server.url, mode)
            except Exception as exc:  # every operation is fuzzed; all failures are reported
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    # Whatever the fuzzer managed to store, the tenant still works.
    with httpx.Client(base_url=live_server.url, headers=bearer(TEST_API_KEY)) as http:
        assert http.get("/tenants/me/policy").status_code == 200
        call = http.post("/calls", json={"name": "Ann", "phone": "212-555-0100"})
        assert call.status_code in (201, 422), call.text
        assert call.json().get("type") != "urn:caretime:problem:stored-policy-invalid"
