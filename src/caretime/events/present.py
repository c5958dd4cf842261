"""An event as callers see it: in the feed and as a webhook's body (one shape for both)."""

from __future__ import annotations

from typing import Any

from caretime.clock import isoformat_z
from caretime.events.models import Event


def event_document(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": isoformat_z(event.occurred_at),
        "subject": {"kind": event.subject_kind, "id": event.subject_id},
        "actor": event.actor,
        "data": event.data,
    }
