"""Every change as an event with its actor: the audit trail, the feed and the outbox.

Domains and messaging emit through `emit`; this package knows no domain.
"""

from caretime.events.actor import SYSTEM, acting_as, current_actor, set_actor
from caretime.events.emit import PreparedEvents, emit, emit_many, emit_prepared, prepare_many

__all__ = [
    "SYSTEM",
    "PreparedEvents",
    "acting_as",
    "current_actor",
    "emit",
    "emit_many",
    "emit_prepared",
    "prepare_many",
    "set_actor",
]
