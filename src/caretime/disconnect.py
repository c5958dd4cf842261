"""Work done for a client that may leave: cancelled when it disconnects, so a large batch
stops, and its transaction rolls back, instead of running on (and holding locks) for nobody."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from caretime.errors import CaretimeError

T = TypeVar("T")


class ClientGone(CaretimeError):
    status = 499
    problem = "client-closed-request"
    title = "The client closed the connection"


async def while_connected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, which is cancelled if the client disconnects first. Call it once
    the request's body has been read: what the client sends next can only be its leaving."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGone("the client left before the work was done; nothing was kept")
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
