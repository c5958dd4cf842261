"""The request body limit, applied by the edge layer (caretime.edge) ahead of parsing and of
authentication, so an oversized body is refused (413 problem+json) before anything holds it
in memory.

A declared Content-Length over the limit is refused without reading a byte; a body sent
without one (chunked) is counted as it streams and refused as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from caretime.errors import problem_response

# Methods whose requests caretime's routes never read a body of.
# Methods no route reads a body of; they are also the requests that only read.
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the limit."""


def needs_counting(scope: Scope, declared: int | None) -> bool:
    """Whether the body must be counted as it streams: only one of undeclared length (the
    server reads no more than a declared one) on a method whose requests routes read."""
    return declared is None and scope["method"] not in BODILESS


def counting(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising BodyTooLarge once the body received passes `max_bytes`."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLarge
        return message

    return counting_receive


def too_large(max_bytes: int) -> Response:
    response = problem_response(
        413,
        "body-too-large",
        "The request body is too large",
        f"a request body may hold at most {max_bytes} bytes "
        "(CARETIME_MAX_BODY_BYTES); send large batches in parts",
        limit=max_bytes,
    )
    # The unread rest of the body is not waited for: the server closes the connection.
    response.headers["Connection"] = "close"
    return response


def declared_length(scope: Scope) -> int | None:
    """The body's length as Content-Length declares it, or None (none, or not a number)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
