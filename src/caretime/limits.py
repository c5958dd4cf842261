"""The request body limit: pure ASGI, ahead of parsing and of authentication, so an oversized
body is refused (413 problem+json) before anything holds it in memory.

A declared Content-Length over the limit is refused without reading a byte; a body sent
without one (chunked) is counted as it streams and refused as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caretime.errors import problem_response

# Methods whose requests caretime's routes never read a body of.
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the limit."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            # The server reads no more than the declared length: nothing left to count (and
            # a GET without a body declares 0 or nothing: see below).
            await self.app(scope, receive, send)
            return
        if scope["method"] in BODILESS:
            # No length and no body a route reads: nothing to count.
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counting(receive), tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        return counting_receive

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "body-too-large",
            "The request body is too large",
            f"a request body may hold at most {self.max_bytes} bytes "
            "(CARETIME_MAX_BODY_BYTES); send large batches in parts",
            limit=self.max_bytes,
        )
        # The unread rest of the body is not waited for: the server closes the connection.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
