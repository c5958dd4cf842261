"""The phone simulator: be any simulated patient or caregiver — read what their phone
received and reply through the same service `/messages/inbound` uses."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Form, Query
from starlette.responses import RedirectResponse, Response

from caretime.deps import ClockDep, RuntimeDep, SessionDep
from caretime.errors import InvalidInput, NotFound
from caretime.messaging import inbound, keypad
from caretime.messaging.keypad_routes import listening_simulated_call
from caretime.messaging.phones import to_e164
from caretime.messaging.providers import providers_of
from caretime.runtime import Runtime
from caretime.web import simulator_queries
from caretime.web.auth import ActorDep, ViewerDep
from caretime.web.routing import web_router

router = web_router()


@router.get("/ui/phone")
async def phones_page(viewer: ViewerDep, db: SessionDep, runtime: RuntimeDep) -> Response:
    _require_simulator(runtime)
    phones = await simulator_queries.simulated_phones(db, viewer.tenant_id)
    return viewer.render("phones.html", phones=phones)


@router.get("/ui/phone/go")
async def open_phone(_viewer: ViewerDep, number: Annotated[str, Query()]) -> Response:
    return RedirectResponse(f"/ui/phone/{quote(_number(number))}", status_code=303)


@router.get("/ui/phone/{phone}")
async def phone_page(
    viewer: ViewerDep,
    db: SessionDep,
    runtime: RuntimeDep,
    phone: str,
    intent: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query()] = None,
) -> Response:
    _require_simulator(runtime)
    number = _number(phone)
    return viewer.render(
        "phone.html",
        phone=number,
        thread=await simulator_queries.phone_thread(db, viewer.tenant_id, number),
        outcome={"intent": intent, "action": action} if action else None,
    )


@router.get("/ui/phone/{phone}/thread")
async def phone_thread(
    viewer: ViewerDep, db: SessionDep, runtime: RuntimeDep, phone: str
) -> Response:
    _require_simulator(runtime)
    number = _number(phone)
    thread = await simulator_queries.phone_thread(db, viewer.tenant_id, number)
    return viewer.render("_phone_thread.html", phone=number, thread=thread)


@router.post("/ui/phone/{phone}/reply")
async def reply(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    phone: str,
    body: Annotated[str, Form()],
) -> Response:
    _require_simulator(runtime)
    number = _number(phone)
    outcome = await inbound.receive(
        db,
        viewer.tenant_id,
        inbound.Inbound(from_phone=number, body=body),
        now=clock.now(),
        classifier=inbound.classifier_of(runtime),
    )
    query = urlencode({"intent": str(outcome.intent), "action": outcome.action})
    return RedirectResponse(f"/ui/phone/{quote(number)}?{query}", status_code=303)


@router.post("/ui/phone/{phone}/calls/{message_id}/digits")
async def press_key(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    phone: str,
    message_id: str,
    digits: Annotated[str, Form(pattern=r"^[0-9*#]$")],
) -> Response:
    """A key pressed during a simulated call, as POST /simulator/calls/{id}/digits."""
    _require_simulator(runtime)
    number = _number(phone)
    call = await listening_simulated_call(db, viewer.tenant_id, message_id)
    outcome = await keypad.press(
        db, viewer.tenant_id, call, digits, provider="simulator", now=clock.now()
    )
    query = urlencode({"intent": str(outcome.intent or ""), "action": outcome.action})
    return RedirectResponse(f"/ui/phone/{quote(number)}?{query}", status_code=303)


def _require_simulator(runtime: Runtime) -> None:
    if not providers_of(runtime).uses("simulator"):
        raise NotFound("the simulator provider is not configured, so there are no simulated phones")


def _number(raw: str) -> str:
    number = to_e164(raw)
    if number is None:
        raise InvalidInput(f"{raw!r} is not a phone number")
    return number
