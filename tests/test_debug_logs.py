"""At CARETIME_LOG_LEVEL=DEBUG a whole flow (calls, a booking, a fan-out and its reply)
leaves no name, phone or message body in the logs: libraries that log SQL parameters stay
at WARNING whatever our level is (issue 20.4)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from caretime.dispatch.worker import Dispatcher
from caretime.observability import mask_phone_like
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider, make_reservation
from tests.support import logging_as_served

PATIENT = "Zebulon Quixmarker"
CLIENT_REF = "quixclient-77"
CAREGIVER = "Ottoline Quixnurse"
NOTES = "quixnotes gate code"
REPLY = "yes quixreply"
MARKERS = ("quix", "Quix", "2065550143", "6175550187")
SLOT = "2026-03-03T16:00:00Z"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    with logging_as_served("DEBUG") as handler:
        yield handler.stream


async def test_a_whole_flow_at_debug_logs_no_phi(
    debug_log: io.StringIO, app: FastAPI, client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    call = await client.post("/calls", json={"name": PATIENT, "phone": "+12065550143"})
    assert call.status_code == 201, call.text
    batch = [{"name": PATIENT, "phone": "617-555-0187"}]
    assert (await client.post("/schedule", json=batch)).status_code == 200
    await make_provider(client)
    day = {"date": "2026-03-03", "start": "08:00", "end": "15:00"}
    await make_availability(client, windows=day)
    hold = await make_reservation(client, slot_start=SLOT, client_id=CLIENT_REF)
    assert (await client.post(f"/reservations/{hold['id']}/confirm")).status_code == 200
    caregiver = {"id": "cg1", "name": CAREGIVER, "phone": "+16175550187", "roles": ["RN"]}
    assert (await client.post("/caregivers", json=caregiver)).status_code == 201
    shift = {
        "id": "s1",
        "role_required": "RN",
        "start_time": "2026-03-02T20:00:00Z",
        "end_time": "2026-03-03T04:00:00Z",
        "notes": NOTES,
    }
    assert (await client.post("/shifts", json=shift)).status_code == 201
    assert (await client.post("/shifts/s1/fanout")).status_code in (200, 202)
    await dispatcher.run_pending()
    reply = await client.post("/messages/inbound", json={"from": "+16175550187", "body": REPLY})
    assert reply.json()["action"] == "assigned", reply.text
    await dispatcher.run_pending()

    logged = debug_log.getvalue()
    assert logging.getLogger("caretime.shifts").isEnabledFor(logging.DEBUG)
    assert '"event": "shift_reply"' in logged  # the buffer did receive the flow's logs
    assert [marker for marker in MARKERS if marker in logged] == []


def test_ids_survive_the_phone_mask() -> None:
    call_id = "call_019a1b2c3d4e5f60718293a4b5c6d7e8"
    tenant_id = "ten_0123456789abcdef0123456789ab"
    line = f"placed {call_id} for {tenant_id} to +1 206 555 0100"
    assert mask_phone_like(line) == f"placed {call_id} for {tenant_id} to [redacted]"


def test_an_encoded_phone_in_a_url_is_still_masked() -> None:
    assert "2065550100" not in mask_phone_like("GET /calls?phone=%2B12065550100 HTTP/1.1")


async def test_a_database_error_keeps_its_statements_parameters_out_of_its_text(
    runtime: Runtime,
) -> None:
    """An unexpected database error is logged with its traceback (`unhandled_error`): the
    statement's parameters, which hold names, phones and bodies, are not in its text."""
    for engine in (runtime.engine, runtime.read_engine):
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(
                    text("SELECT * FROM no_such_table WHERE name = :name"), {"name": PATIENT}
                )
        assert "no_such_table" in str(raised.value)
        assert PATIENT not in str(raised.value)
