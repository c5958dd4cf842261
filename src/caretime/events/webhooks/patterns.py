"""Which event types an endpoint wants: exact types, a family (`call.*`) or everything (`*`)."""

from __future__ import annotations

from collections.abc import Iterable

from caretime.events.catalogue import EVENT_TYPES

EVERYTHING = "*"


def matches(patterns: Iterable[str], event_type: str) -> bool:
    return any(_match(pattern, event_type) for pattern in patterns)


def _match(pattern: str, event_type: str) -> bool:
    if pattern in (EVERYTHING, event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def unknown_patterns(patterns: Iterable[str]) -> list[str]:
    """Patterns that match no type of the catalogue (a typo would silently receive nothing)."""
    return [p for p in patterns if not any(_match(p, known) for known in EVENT_TYPES)]


def valid_patterns_hint() -> str:
    families = sorted({t.split(".", 1)[0] + ".*" for t in EVENT_TYPES})
    return ", ".join([EVERYTHING, *families, *sorted(EVENT_TYPES)])
