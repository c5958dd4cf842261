"""Request dependencies shared by every router: runtime, the request's transaction, clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caretime.clock import Clock
from caretime.config import Settings
from caretime.db import reading, transaction
from caretime.events import SYSTEM, set_actor
from caretime.limits import BODILESS
from caretime.runtime import Runtime


# Every dependency is `async def`: FastAPI runs a plain `def` in a worker thread, a thread
# hop per request for a function that only reads an attribute.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# The dependencies below read the runtime from the request themselves rather than depending
# on `get_runtime`: FastAPI solves each sub-dependency of each dependency again on every
# request (even one it has cached), and these sit under most routes several times over.


_ACTOR_NAMED = "caretime.actor_named"


def act_for_request(request: Request, actor: str) -> None:
    """`actor` acts for the rest of the request (authentication calls it). The request's
    session does not reset it to `system`, whichever of the two FastAPI solves first."""
    request.scope[_ACTOR_NAMED] = True
    set_actor(actor)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed after the endpoint returns, before the response
    is sent (scope="function"), so a client never sees success for a rolled-back change.
    GET requests only read, so they do not queue behind SQLite's single writer."""
    if _ACTOR_NAMED not in request.scope:
        set_actor(SYSTEM)  # until authentication says who is acting
    runtime: Runtime = request.app.state.runtime
    if request.method in BODILESS:
        async with reading(runtime.read_sessions) as session:
            yield session
        return
    async with transaction(runtime.sessions) as session:
        yield session


@asynccontextmanager
async def reading_first(request: Request) -> AsyncIterator[AsyncConnection]:
    """A reader connection of its own for what a request reads before its own work (its key
    check, or the policy version when the key came from the key cache), so that neither
    depends on the request's session: a route that needs no session of its own (`GET
    /tenants/me`) opens none, and a write request's transaction begins with the first
    statement of the endpoint. On SQLite that transaction takes the database's write lock
    at BEGIN IMMEDIATE, and every other writer waits for it; on PostgreSQL it spares a
    request that writes elsewhere (an inbound reply, written by the desk's batch) a BEGIN
    and a COMMIT around its key check. A reader sees what was committed when its statement
    began: a key revoked by any process before it is refused."""
    runtime: Runtime = request.app.state.runtime
    async with runtime.read_engine.connect() as connection:
        yield connection


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.runtime.clock
    return clock


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
