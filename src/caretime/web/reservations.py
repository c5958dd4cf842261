"""Reservations from the dashboard: hold a free slot for a client, then confirm, deny or cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Form
from starlette.responses import Response

from caretime.booking import reservations, transitions
from caretime.deps import ClockDep, SessionDep
from caretime.web.auth import ActorDep
from caretime.web.booking import to_provider
from caretime.web.routing import web_router

router = web_router()
# The dashboard's verbs and the appointment status each one moves to.
MOVES = {"confirm": "confirmed", "deny": "denied", "cancel": "cancelled"}


@router.post("/ui/booking/{provider_id}/reserve")
async def reserve(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    provider_id: str,
    slot_start: Annotated[datetime, Form()],
    client_id: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    request = reservations.ReservationRequest(provider_id, slot_start, client_id.strip())
    appointment = await reservations.reserve(
        db, viewer.tenant_id, viewer.policy.booking, request, now=clock.now()
    )
    return to_provider(provider_id, appointment.slot_start.date())


@router.post("/ui/reservations/{reservation_id}/{verb}")
async def move(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    reservation_id: str,
    verb: Literal["confirm", "deny", "cancel"],
) -> Response:
    appointment = await transitions.move(
        db, viewer.tenant_id, reservation_id, MOVES[verb], now=clock.now()
    )
    return to_provider(appointment.provider_id, appointment.slot_start.date())
