"""Opaque keyset cursors over (instant, id) pairs."""

from __future__ import annotations

import base64
from datetime import datetime

from caretime.clock import ensure_utc
from caretime.errors import InvalidInput


def encode(position: tuple[datetime, str] | None) -> str | None:
    if position is None:
        return None
    text = f"{position[0].isoformat()}|{position[1]}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        instant, _, id_ = base64.urlsafe_b64decode(padded).decode().partition("|")
        return ensure_utc(datetime.fromisoformat(instant)), id_
    except ValueError:
        raise InvalidInput("cursor is not one this API returned") from None
