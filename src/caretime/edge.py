"""Every request's edge, in one pure ASGI layer ahead of routing, parsing and authentication:
its request id and metrics (observability), its actor (`system` until authentication names
one: events), the 500 problem for an exception no handler claimed (errors), the body
limit's 413 (limits) and the input guard's 422 (inputs).

They were four middlewares, each wrapping `send` (and some `receive`) and awaiting the next:
a quarter of a `GET /health`. Here each is a plain function called in the order the layers
had, outermost first, with one `send` wrapper for all of them; a request without a body, a
query string or an unusual path (every probe) passes the limit and the guard with a header
scan and a few string checks.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caretime.errors import unhandled_error
from caretime.events import SYSTEM, set_actor
from caretime.inputs import screened
from caretime.limits import BodyTooLarge, counting, declared_length, needs_counting, too_large
from caretime.observability import bind_request, record_request, unbind_request


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, binding = bind_request(scope)
        set_actor(SYSTEM)  # until authentication says who is acting
        request_id_header = (b"x-request-id", request_id.encode())
        began = time.perf_counter()
        status = 0  # until the response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append(request_id_header)
            await send(message)

        try:
            await self._guarded(scope, receive, send_with_id)
        except Exception as exc:
            if isinstance(exc, BodyTooLarge) and not status:
                response = too_large(self.max_body_bytes)
            else:
                response = unhandled_error(exc)
                if status:
                    raise  # too late for a problem: the server ends the response
            await response(scope, receive, send_with_id)
        finally:
            record_request(scope, status or 500, time.perf_counter() - began)
            unbind_request(binding)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The body limit, then the input guard (which reads bodies the limit has bounded),
        then the app."""
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await too_large(self.max_body_bytes)(scope, receive, send)
            return
        if needs_counting(scope, declared):
            receive = counting(receive, self.max_body_bytes)
        refusal, receive = await screened(scope, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)
