"""A reservation as the API shows it: its status as of now, with the FHIR statuses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from caretime.booking import lifecycle
from caretime.booking.models import Appointment
from caretime.booking.schemas import FhirStatus, ReservationOut


def render(appointment: Appointment, now: datetime) -> ReservationOut:
    current = lifecycle.effective_status(appointment, now)
    fhir_appointment, fhir_slot = lifecycle.FHIR[current]
    return ReservationOut(
        id=appointment.id,
        status=current,
        expires_at=appointment.hold_expires_at if current == "held" else None,
        provider_id=appointment.provider_id,
        slot_start=appointment.slot_start,
        slot_end=appointment.slot_end,
        visit_type=appointment.visit_type_id,
        client_id=appointment.client_id,
        created_at=appointment.created_at,
        confirmed_at=appointment.confirmed_at,
        arrived_at=appointment.arrived_at,
        fhir=FhirStatus(appointment=fhir_appointment, slot=fhir_slot),
    )


def render_json(appointment: Appointment, now: datetime) -> bytes:
    """`render(...)`'s JSON, byte for byte, without building and validating the model (a
    third of the answer's cost on the reservation path): orjson writes aware UTC instants
    as pydantic does (`Z`, microseconds only when there are some)."""
    current = lifecycle.effective_status(appointment, now)
    fhir_appointment, fhir_slot = lifecycle.FHIR[current]
    fields: dict[str, Any] = {
        "id": appointment.id,
        "status": current,
        "expires_at": appointment.hold_expires_at if current == "held" else None,
        "provider_id": appointment.provider_id,
        "slot_start": appointment.slot_start,
        "slot_end": appointment.slot_end,
        "visit_type": appointment.visit_type_id,
        "client_id": appointment.client_id,
        "created_at": appointment.created_at,
        "confirmed_at": appointment.confirmed_at,
        "arrived_at": appointment.arrived_at,
        "fhir": {"appointment": fhir_appointment, "slot": fhir_slot},
    }
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z)
