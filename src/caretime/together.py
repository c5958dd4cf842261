"""Two awaitables at once, neither left running behind the other's failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both awaited at once, each to its end before a failure of either is raised (the first
    one's first): work using the request's session must not go on using it while the request
    unwinds, as plain gather would leave it at the first failure."""
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    for result in (a, b):
        if isinstance(result, BaseException):
            raise result
    return a, b  # type: ignore[return-value]
