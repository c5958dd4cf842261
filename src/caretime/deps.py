"""Request dependencies shared by every router: runtime, the request's transaction, clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any, Generic, TypeVar

from anyio import CancelScope
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caretime.clock import Clock
from caretime.config import Settings
from caretime.db import reading, transaction
from caretime.limits import BODILESS
from caretime.runtime import Runtime

T = TypeVar("T")


# Every dependency is `async def`: FastAPI runs a plain `def` in a worker thread, a thread
# hop per request for a function that only reads an attribute.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# The dependencies below read the runtime from the request themselves rather than depending
# on `get_runtime`: FastAPI solves each sub-dependency of each dependency again on every
# request (even one it has cached), and these sit under most routes several times over.


# The exit stack FastAPI closes when the endpoint has returned, before the response is
# sent: the one it ends a `scope="function"` generator dependency on.
_ENDPOINT_EXITS = "fastapi_function_astack"


async def get_session(request: Request) -> AsyncSession:
    """The request's unit of work: committed after the endpoint returns, before the response
    is sent, so a client never sees success for a rolled-back change. GET requests only
    read, so they do not queue behind SQLite's single writer.

    A plain dependency that puts the unit's end on FastAPI's exit stack for the endpoint
    itself, where FastAPI would put a generator dependency's: a generator costs every
    request two more context managers and a cancel scope around it (docs/benchmarks.md,
    "fw")."""
    runtime: Runtime = request.app.state.runtime
    if request.method in BODILESS:
        return await _until_endpoint_returns(request, reading(runtime.read_sessions))
    return await _until_endpoint_returns(request, transaction(runtime.sessions))


async def get_reader(request: Request) -> AsyncConnection:
    """A reader connection (each statement its own transaction: `db.create_read_engine`) for
    a GET whose endpoint reads with Core statements only, closed when the endpoint returns.
    An ORM session around the same statement (its construction, the transaction it begins
    on the connection and ends, its close) cost a `GET /calls/{id}` a fifth of its CPU
    (docs/benchmarks.md, "fw")."""
    runtime: Runtime = request.app.state.runtime
    return await _until_endpoint_returns(request, runtime.read_engine.connect())


async def _until_endpoint_returns(request: Request, unit: AbstractAsyncContextManager[T]) -> T:
    """`unit` entered now and ended on FastAPI's exit stack for the endpoint, its end (a
    commit, a rollback, a connection's return to the pool) shielded from cancellation as
    FastAPI shields a generator dependency's."""
    exits: AsyncExitStack | None = request.scope.get(_ENDPOINT_EXITS)
    if exits is None:  # a FastAPI that no longer names it: fail loudly, not with a KeyError
        raise RuntimeError(f"FastAPI gave no {_ENDPOINT_EXITS!r} exit stack: see deps.py")
    return await exits.enter_async_context(_ShieldedExit(unit))


class _ShieldedExit(Generic[T]):
    """`unit`, whose end (a commit, a rollback) is not cancelled halfway."""

    __slots__ = ("unit",)

    def __init__(self, unit: AbstractAsyncContextManager[T]) -> None:
        self.unit = unit

    async def __aenter__(self) -> T:
        return await self.unit.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        with CancelScope(shield=True):
            suppressed = await self.unit.__aexit__(*exc_info)
        return suppressed


@asynccontextmanager
async def reading_first(request: Request) -> AsyncIterator[AsyncConnection]:
    """A reader connection of its own for what a request reads before its own work (its key
    check, or its tenant's policy when this process has not parsed it), so that neither
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


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReaderDep = Annotated[AsyncConnection, Depends(get_reader)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
