"""The Standard Webhooks scheme (webhook-id, webhook-timestamp, webhook-signature), through
the `standardwebhooks` library so that what we sign is what receivers' libraries verify."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """24 random bytes, base64: the `whsec_...` form receivers' libraries take as is."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(24)).decode()


def body_of(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), sort_keys=True)


def signed_headers(secret: str, message_id: str, body: str) -> dict[str, str]:
    # The timestamp is the wall clock at sending, never an injected clock: receivers reject
    # signatures older than a few minutes by their own clock (replay protection).
    sent = datetime.fromtimestamp(int(time.time()), tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, sent, body),
        "content-type": "application/json",
        "user-agent": "caretime-webhooks/1",
    }
