"""Twilio webhooks: inbound SMS and status callbacks, form-encoded and signed.

They carry no API key. A status callback finds its message (and so its tenant) by our
message id in its URL (by Twilio's sid for messages sent before that); an inbound SMS goes
to the tenant that owns the number it was sent to (`To`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.request_validator import RequestValidator

from caretime.config import Settings
from caretime.db import locking
from caretime.deps import ClockDep, RuntimeDep, SessionDep
from caretime.errors import CaretimeError, NotFound
from caretime.messaging import inbound
from caretime.messaging.models import Message
from caretime.messaging.providers import providers_of
from caretime.messaging.providers.base import ProviderError
from caretime.messaging.providers.twilio import (
    AMD_CALLBACK_PATH,
    INBOUND_SMS_PATH,
    STATUS_CALLBACK_PATH,
    TwilioProvider,
    normalize_status,
)
from caretime.messaging.queued import record_for_later
from caretime.messaging.repository import find_by_provider_id
from caretime.messaging.tracking import record_event
from caretime.observability import log_event
from caretime.openapi import problems
from caretime.tenancy.numbers import owner_of

log = logging.getLogger("caretime.messaging")
router = APIRouter(tags=["webhooks"], include_in_schema=True)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Callback fields worth keeping in the event log (never To, From or Body: those are PHI).
STATUS_FIELDS = (
    "MessageSid",
    "MessageStatus",
    "SmsStatus",
    "CallSid",
    "CallStatus",
    "ErrorCode",
    "ErrorMessage",
    "CallDuration",
    "SequenceNumber",
    "Timestamp",
    "AnsweredBy",
)


def twilio_form(example: dict[str, str]) -> dict[str, Any]:
    """The form Twilio posts, documented (the handler reads and verifies it itself)."""
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    form = {"schema": schema, "example": example}
    return {"requestBody": {"content": {"application/x-www-form-urlencoded": form}}}


class InvalidSignature(CaretimeError):
    status = 403
    problem = "invalid-signature"
    title = "The webhook signature does not validate"


async def verified_form(request: Request, settings: Settings, path: str) -> dict[str, str]:
    """The form, if X-Twilio-Signature matches it for CARETIME_PUBLIC_URL + path."""
    form = {key: str(value) for key, value in (await request.form()).items()}
    token = settings.twilio_auth_token.get_secret_value()
    signature = request.headers.get("X-Twilio-Signature", "")
    query = request.url.query
    url = settings.public_url.rstrip("/") + path + (f"?{query}" if query else "")
    if not token or not signature or not RequestValidator(token).validate(url, form, signature):
        raise InvalidSignature("X-Twilio-Signature is missing or does not match this request")
    return form


@router.post(
    INBOUND_SMS_PATH,
    response_class=Response,
    responses={
        200: {"description": "Empty TwiML: no reply", "content": {"text/xml": {}}},
        **problems(InvalidSignature, NotFound),
    },
    openapi_extra=twilio_form(
        {"From": "+12065550100", "To": "+15550001000", "Body": "YES", "MessageSid": "SM0123"}
    ),
)
async def twilio_inbound_sms(
    request: Request, session: SessionDep, clock: ClockDep, runtime: RuntimeDep
) -> Response:
    """Twilio's inbound SMS webhook (form-encoded, `X-Twilio-Signature` checked). The reply
    is recorded (once per `MessageSid`) and answered at once with empty TwiML; a dispatch job
    then routes it like POST /messages/inbound, and its answer goes out as an SMS."""
    form = await verified_form(request, runtime.settings, INBOUND_SMS_PATH)
    tenant_id = await owner_of(session, form.get("To", ""))
    if tenant_id is None:
        raise NotFound("no tenant owns the number this message was sent to (To)")
    received = inbound.Inbound(
        from_phone=form.get("From", ""),
        body=form.get("Body", ""),
        to_phone=form.get("To"),
        provider="twilio",
        provider_id=form.get("MessageSid"),
    )
    message = await record_for_later(session, tenant_id, received, now=clock.now())
    log_event(log, "twilio_inbound", message_id=message.id)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post(
    STATUS_CALLBACK_PATH,
    status_code=204,
    response_class=Response,
    responses=problems(InvalidSignature),
    openapi_extra=twilio_form({"MessageSid": "SM0123", "MessageStatus": "delivered"}),
)
async def twilio_status(
    request: Request, session: SessionDep, clock: ClockDep, runtime: RuntimeDep
) -> Response:
    """Twilio's status callback (form-encoded, signature checked): records the provider
    event and moves the message's delivery status forward only."""
    form = await verified_form(request, runtime.settings, STATUS_CALLBACK_PATH)
    is_call = "CallStatus" in form
    sid = form.get("CallSid" if is_call else "MessageSid", "")
    raw = form.get("CallStatus") if is_call else form.get("MessageStatus", form.get("SmsStatus"))
    message = await _callback_message(session, request.query_params.get("message_id"), sid)
    if message is None:
        log_event(log, "twilio_status_unknown_sid", sid=sid)
        return Response(status_code=204)
    code = form.get("ErrorCode")
    await record_event(
        session,
        message,
        source="twilio",
        status=normalize_status(message.channel, raw),
        provider_status=raw,
        raw={k: form[k] for k in STATUS_FIELDS if k in form},
        now=clock.now(),
        error=f"twilio error {code}" if code else None,
    )
    return Response(status_code=204)


async def _callback_message(
    session: AsyncSession, message_id: str | None, sid: str
) -> Message | None:
    """The message a callback is about, locked: by our id when the URL carries it (the send
    job may not have stored Twilio's sid yet), else by the sid."""
    if message_id is None:
        return await find_by_provider_id(session, "twilio", sid)
    found = await session.scalars(locking(select(Message).where(Message.id == message_id)))
    message = found.first()
    if message is None or message.provider_id not in (None, sid):
        return None
    return message


@router.post(
    AMD_CALLBACK_PATH,
    status_code=204,
    response_class=Response,
    responses=problems(InvalidSignature),
    openapi_extra=twilio_form({"CallSid": "CA0123", "AnsweredBy": "machine_end_beep"}),
)
async def twilio_machine_detection(
    request: Request, session: SessionDep, clock: ClockDep, runtime: RuntimeDep
) -> Response:
    """Twilio's asynchronous answering-machine verdict. A machine (or fax) ends the call as
    its sender asked (hang up, or leave the message first) and is recorded as `voicemail`;
    a human changes nothing."""
    form = await verified_form(request, runtime.settings, AMD_CALLBACK_PATH)
    sid, answered_by = form.get("CallSid", ""), form.get("AnsweredBy", "unknown")
    message = await find_by_provider_id(session, "twilio", sid)
    if message is None:
        log_event(log, "twilio_amd_unknown_sid", sid=sid)
        return Response(status_code=204)
    machine = answered_by.startswith(("machine", "fax"))
    if machine:
        await _at_the_machine(runtime, sid, message.context)
    await record_event(
        session, message, source="twilio", status="voicemail" if machine else None,
        provider_status=answered_by, raw={k: form[k] for k in STATUS_FIELDS if k in form},
        now=clock.now(),
    )  # fmt: skip
    return Response(status_code=204)


async def _at_the_machine(runtime: Any, sid: str, context: dict[str, Any] | None) -> None:
    on_machine = (context or {}).get("on_machine") or {}
    provider = providers_of(runtime).named("twilio")
    if not isinstance(provider, TwilioProvider):
        return
    leave = on_machine.get("message") if on_machine.get("action") == "leave_message" else None
    try:
        await provider.at_the_machine(sid, leave)
    except ProviderError as exc:  # the call may have ended already: the verdict still counts
        log_event(log, "twilio_amd_action_failed", sid=sid, reason=exc.reason)
