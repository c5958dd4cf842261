"""Where keys pressed during a call come in: Twilio's `<Gather>` action (signed, like every
Twilio webhook) and the simulator's keypad. Both hand the key to `keypad.press`."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.config import Settings
from caretime.deps import ClockDep, RuntimeDep, SessionDep
from caretime.errors import Conflict, NotFound
from caretime.messaging import keypad
from caretime.messaging.models import Message
from caretime.messaging.providers import providers_of, twiml
from caretime.messaging.repository import MessageRepository
from caretime.messaging.schemas import KeypressIn, KeypressOut
from caretime.messaging.webhooks import InvalidSignature, twilio_form, verified_form
from caretime.observability import log_event
from caretime.openapi import problems
from caretime.storable import PathText
from caretime.tenancy.auth import TenantDep
from caretime.tenancy.numbers import owner_of

log = logging.getLogger("caretime.messaging")
router = APIRouter()
# A simulated call hears keys once a person answered it (it may have ended since: the
# simulator does not model when in the call the key was pressed).
ANSWERED = ("in_progress", "completed")


class CallNotListening(Conflict):
    problem = "call-not-listening"
    title = "The call is not listening for a key"


@router.post(
    twiml.GATHER_PATH,
    response_class=Response,
    tags=["webhooks"],
    responses={
        200: {"description": "TwiML: what the caller hears next", "content": {"text/xml": {}}},
        **problems(InvalidSignature, NotFound),
    },
    openapi_extra=twilio_form(
        {"CallSid": "CA0123", "From": "+15550001000", "To": "+16175550100", "Digits": "1"}
    ),
)
async def twilio_keypress(
    request: Request, session: SessionDep, clock: ClockDep, runtime: RuntimeDep
) -> Response:
    """Twilio's `<Gather>` action for a call that asked for a key (form-encoded,
    `X-Twilio-Signature` checked). `message_id` in the URL names the call, for the tenant
    that owns the number it came from (`From`). A choice is a reply like a text; the answer
    is TwiML saying what it did. Any other key hears the prompt once more."""
    form = await verified_form(request, runtime.settings, twiml.GATHER_PATH)
    call = await _twilio_call(session, form, request.query_params.get("message_id", ""))
    outcome = await keypad.press(
        session, call.tenant_id, call, form.get("Digits", ""), provider="twilio", now=clock.now()
    )
    log_event(log, "twilio_keypress", message_id=call.id, action=outcome.action)
    retried = request.query_params.get("retry") == "1"
    return Response(_spoken(outcome, call, runtime.settings, retried), media_type="text/xml")


async def _twilio_call(session: AsyncSession, form: dict[str, str], message_id: str) -> Message:
    tenant_id = await owner_of(session, form.get("From", ""))
    if tenant_id is None:
        raise NotFound("no tenant owns the number this call came from (From)")
    call = await MessageRepository(session, tenant_id).get(message_id)
    sid = form.get("CallSid", "")
    if call is None or not _outbound_call(call) or call.provider_id not in (None, sid):
        raise NotFound(f"no call {message_id!r} from this number with CallSid {sid!r}")
    return call


def _spoken(outcome: keypad.KeypadOutcome, call: Message, settings: Settings, retried: bool) -> str:
    if outcome.action != keypad.REPEAT:
        return twiml.say_and_hang_up(outcome.said)
    if retried:
        return twiml.say_and_hang_up(twiml.NOT_A_CHOICE_GOODBYE)
    return twiml.ask_for_key(call.body, settings.public_url, call.id, retried=True)


@router.post(
    "/simulator/calls/{message_id}/digits",
    tags=["simulator"],
    responses=problems(NotFound, CallNotListening),
)
async def simulator_keypress(
    message_id: PathText,
    press: KeypressIn,
    tenant: TenantDep,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
) -> KeypressOut:
    """Press a key during a simulated call that asked for one (a voice shift offer: 1 takes
    the shift, 2 passes), as Twilio's `<Gather>` would post it. A call takes one answer: a
    second press answers what the first did. Any other key: `repeat`, the prompt again."""
    if not providers_of(runtime).uses("simulator"):
        raise NotFound("the simulator provider is not configured")
    call = await listening_simulated_call(session, tenant.id, message_id)
    outcome = await keypad.press(
        session, tenant.id, call, press.digits, provider="simulator", now=clock.now()
    )
    return KeypressOut.model_validate(outcome.as_response(call))


async def listening_simulated_call(
    session: AsyncSession, tenant_id: str, message_id: str
) -> Message:
    """The tenant's simulated call `message_id`, if it asks for a key and was answered."""
    call = await MessageRepository(session, tenant_id).get(message_id)
    if call is None or not _outbound_call(call) or call.provider != "simulator":
        raise NotFound(f"no simulated call {message_id!r}")
    _require_listening(call)
    return call


def _outbound_call(message: Message) -> bool:
    return message.direction == "outbound" and message.channel == "voice"


def _require_listening(call: Message) -> None:
    if not keypad.choices_of(call.context):
        raise CallNotListening(f"call {call.id!r} asks for no key")
    if call.status not in ANSWERED:
        raise CallNotListening(
            f"call {call.id!r} is {call.status}: keys can be pressed once it is answered "
            "(status in_progress)"
        )
