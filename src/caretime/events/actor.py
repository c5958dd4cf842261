"""Who is acting: set at the edges (API key, dashboard, inbound message, worker), read by emit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

SYSTEM = "system"

_actor: ContextVar[str] = ContextVar("actor", default=SYSTEM)


def current_actor() -> str:
    return _actor.get()


def set_actor(actor: str) -> None:
    """For a request's whole life: each request runs in its own context, and the request's
    edge (caretime.edge) sets `system` first, so nothing carries over between requests."""
    _actor.set(actor)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """For a part of a unit of work: an inbound reply acts as itself inside a request."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def api_key_actor(key_id: str) -> str:
    return f"key:{key_id}"


def dashboard_actor(key_id: str) -> str:
    return f"dashboard:{key_id}"


def inbound_actor(message_id: str) -> str:
    return f"inbound:{message_id}"
