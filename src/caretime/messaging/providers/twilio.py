"""Twilio: Messages and Calls over its REST API (form-encoded, basic auth, status callbacks).

Status arrives by callback (POST /webhooks/twilio/status); `poll` fetches the resource, for
reconciling a message whose callbacks were lost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

import httpx

from caretime.config import Settings
from caretime.messaging.keypad import KEYPAD
from caretime.messaging.providers import twiml
from caretime.messaging.providers.base import (
    OutboundRequest,
    PermanentProviderError,
    PollRequest,
    SendReceipt,
    StatusReport,
    TransientProviderError,
    json_object,
)

API_VERSION = "2010-04-01"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
AMD_CALLBACK_PATH = "/webhooks/twilio/amd"
INBOUND_SMS_PATH = "/webhooks/twilio/sms"

SMS_STATUSES = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
VOICE_STATUSES = {
    "queued": "queued",
    "initiated": "queued",
    "ringing": "ringing",
    "in-progress": "in_progress",
    "answered": "in_progress",
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}


def normalize_status(channel: str, raw: str | None) -> str | None:
    table = SMS_STATUSES if channel == "sms" else VOICE_STATUSES
    return table.get((raw or "").lower())


class TwilioProvider:
    name = "twilio"

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.account_sid = settings.twilio_account_sid
        self.auth_token = settings.twilio_auth_token.get_secret_value()
        # No shared number: each tenant sends from its own (CARETIME_TWILIO_FROM is the
        # default tenant's), so that a reply's `To` says which tenant it is for.
        self.from_number: str | None = None
        self.base_url = settings.twilio_base_url.rstrip("/")
        self.public_url = settings.public_url
        self.status_callback = settings.public_url.rstrip("/") + STATUS_CALLBACK_PATH
        self.amd_callback = settings.public_url.rstrip("/") + AMD_CALLBACK_PATH
        self.rate_per_second = settings.twilio_rate_limit
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    def _resource(self, channel: str) -> str:
        kind = "Messages" if channel == "sms" else "Calls"
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/{kind}"

    def form(self, request: OutboundRequest) -> dict[str, Any]:
        if not request.from_:
            raise PermanentProviderError(
                "no number to send from: this tenant owns none (PUT /tenants/me/numbers)"
            )
        form: dict[str, Any] = {
            "To": request.to,
            "From": request.from_,
            # Our id in the callback URL: a callback that comes before the send job commits
            # (and so before we know Twilio's sid) still finds its message.
            "StatusCallback": f"{self.status_callback}?message_id={request.message_id}",
        }
        if request.channel == "sms":
            form["Body"] = request.body
        else:
            form["Twiml"] = self.call_twiml(request)
            form["StatusCallbackEvent"] = ["initiated", "ringing", "answered", "completed"]
            form.update(self._machine_detection(request.context))
        return form

    def call_twiml(self, request: OutboundRequest) -> str:
        """What the call says; a call whose sender offers keypad choices asks for a key."""
        if (request.context or {}).get(KEYPAD):
            return twiml.ask_for_key(request.body, self.public_url, request.message_id)
        return twiml.say(request.body)

    def _machine_detection(self, context: dict[str, Any] | None) -> dict[str, str]:
        """Asynchronous answering-machine detection, for calls whose sender says what to do
        at a machine: the call starts at once and the verdict arrives by callback. To leave
        a message, Twilio waits for the end of the greeting (the beep)."""
        on_machine = (context or {}).get("on_machine")
        if not on_machine:
            return {}
        leave = on_machine.get("action") == "leave_message"
        return {
            "MachineDetection": "DetectMessageEnd" if leave else "Enable",
            "AsyncAmd": "true",
            "AsyncAmdStatusCallback": self.amd_callback,
            "AsyncAmdStatusCallbackMethod": "POST",
        }

    async def at_the_machine(self, call_sid: str, message: str | None) -> None:
        """A machine answered a call in progress: say the message and hang up, or hang up."""
        url = f"{self._resource('voice')}/{call_sid}.json"
        if message:
            twiml = f"<Response><Say>{escape(message)}</Say><Hangup/></Response>"
            await self._call("POST", url, {"Twiml": twiml})
        else:
            await self._call("POST", url, {"Status": "completed"})

    async def send(self, request: OutboundRequest) -> SendReceipt:
        body = await self._call(
            "POST", self._resource(request.channel) + ".json", self.form(request)
        )
        return SendReceipt(str(body["sid"]), self._report(request.channel, body))

    async def poll(self, request: PollRequest) -> StatusReport:
        url = f"{self._resource(request.channel)}/{request.provider_id}.json"
        return self._report(request.channel, await self._call("GET", url, None))

    def _report(self, channel: str, body: dict[str, Any]) -> StatusReport:
        raw = body.get("status")
        fields = {k: body.get(k) for k in ("sid", "status", "error_code", "error_message")}
        return StatusReport(normalize_status(channel, raw), raw, fields)

    def _http(self) -> httpx.AsyncClient:
        # One pooled client for the provider's life: building one costs an SSL context
        # (20-230 ms of CPU measured here), which per request was most of a hand-over.
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self.transport, timeout=15)
        return self._client

    async def _call(self, method: str, url: str, form: dict[str, Any] | None) -> dict[str, Any]:
        auth = (self.account_sid, self.auth_token)
        try:
            response = await self._http().request(method, url, data=form, auth=auth)
        except httpx.TransportError as exc:
            raise TransientProviderError(f"twilio unreachable: {type(exc).__name__}") from exc
        return _checked(response)


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientProviderError(
            f"twilio answered {response.status_code}", retry_after=_retry_after(response)
        )
    body = json_object(response)
    if response.status_code >= 400:
        code, text = body.get("code"), body.get("message") or response.reason_phrase
        raise PermanentProviderError(f"twilio error {code}: {text}" if code else f"twilio: {text}")
    return body


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("Retry-After", "")
    return timedelta(seconds=int(value)) if value.isdigit() else None
