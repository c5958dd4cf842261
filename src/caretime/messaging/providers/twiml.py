"""The TwiML caretime gives Twilio for a call, built with twilio's own `VoiceResponse`: say
the message; or, for a call that asks for a keypress, say it inside a `<Gather>` that posts
the key to our signed webhook, once more if nothing is pressed, then end politely."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from caretime.messaging.keypad import NOT_A_CHOICE

GATHER_PATH = "/webhooks/twilio/gather"
# Seconds Twilio waits for a key after the prompt ends.
KEY_TIMEOUT = 6
NO_KEY_GOODBYE = "We did not hear a choice. Goodbye."
NOT_A_CHOICE_GOODBYE = f"{NOT_A_CHOICE} Goodbye."


def gather_url(public_url: str, message_id: str, *, retry: bool = False) -> str:
    """Where Twilio posts the key pressed during call `message_id`: our id in the URL names
    the call (and so the question it asked), whatever else was asked of that number."""
    url = f"{public_url.rstrip('/')}{GATHER_PATH}?message_id={message_id}"
    return f"{url}&retry=1" if retry else url


def say(text: str) -> str:
    response = VoiceResponse()
    response.say(text)
    return _xml(response)


def say_and_hang_up(text: str) -> str:
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return _xml(response)


def ask_for_key(prompt: str, public_url: str, message_id: str, *, retried: bool = False) -> str:
    """The prompt inside a one-key `<Gather>`. No key: the prompt once more (unless this is
    already the second time), then goodbye. A key that is no choice, pressed after the
    second prompt, ends the call (the webhook is told `retry=1`)."""
    response = VoiceResponse()
    first = prompt if not retried else f"{NOT_A_CHOICE} {prompt}"
    _gather(response, first, gather_url(public_url, message_id, retry=retried))
    if not retried:
        _gather(response, prompt, gather_url(public_url, message_id, retry=True))
    response.say(NO_KEY_GOODBYE)
    response.hangup()
    return _xml(response)


def _gather(response: VoiceResponse, prompt: str, action: str) -> None:
    gather = response.gather(num_digits=1, action=action, method="POST", timeout=KEY_TIMEOUT)
    gather.say(prompt)


def _xml(response: VoiceResponse) -> str:
    xml: str = response.to_xml(xml_declaration=False)
    return xml
