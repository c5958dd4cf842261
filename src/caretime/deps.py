"""Request dependencies shared by every router: runtime, the request's transaction, clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import Clock
from caretime.config import Settings
from caretime.db import transaction
from caretime.events import SYSTEM, set_actor
from caretime.runtime import Runtime


# Every dependency is `async def`: FastAPI runs a plain `def` in a worker thread, a thread
# hop per request for a function that only reads an attribute.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# The dependencies below read the runtime from the request themselves rather than depending
# on `get_runtime`: FastAPI solves each sub-dependency of each dependency again on every
# request (even one it has cached), and these sit under most routes several times over.


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed after the endpoint returns, before the response
    is sent (scope="function"), so a client never sees success for a rolled-back change.
    GET requests only read, so they do not queue behind SQLite's single writer."""
    set_actor(SYSTEM)  # until authentication says who is acting
    runtime: Runtime = request.app.state.runtime
    reading = request.method in READ_ONLY_METHODS
    async with transaction(runtime.read_sessions if reading else runtime.sessions) as session:
        yield session


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.runtime.clock
    return clock


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
