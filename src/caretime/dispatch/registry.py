"""Handlers by job kind. Domains register here; the engine knows nothing of domains."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import leases
from caretime.dispatch.errors import LeaseLost
from caretime.dispatch.retry import RetryPolicy

if TYPE_CHECKING:
    from caretime.runtime import Runtime


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    tenant_id: str | None
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Lease:
    """Who holds a running job and for how long each extension lasts."""

    owner: str
    duration: timedelta


class JobContext:
    """What a handler gets: a session (committed together with the job's completion), the
    runtime (clock, settings, services) and facts about the job itself.

    The dispatcher passes no session: one is opened on first use of `ctx.session`, so a
    handler that never touches the database costs none, and its completion is batched."""

    def __init__(
        self,
        session: AsyncSession | None,
        runtime: Runtime,
        job: JobInfo,
        lease: Lease | None = None,
    ) -> None:
        self.runtime = runtime
        self.job = job
        self.lease = lease
        self._session = session
        self.again_at: datetime | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.runtime.sessions()
        return self._session

    @property
    def opened_session(self) -> AsyncSession | None:
        return self._session

    def now(self) -> datetime:
        return self.runtime.clock.now()

    @asynccontextmanager
    async def step(self) -> AsyncIterator[AsyncSession]:
        """A short transaction of its own, committed when the block ends and only while this
        worker still holds the job (its lease is extended in the same commit); `LeaseLost`
        otherwise. For what must be durable before the job ends: the trace of an external
        effect (a provider accepted a message) that a crash must not erase."""
        async with self.runtime.sessions() as session, session.begin():
            yield session
            if self.lease is not None:
                until = self.now() + self.lease.duration
                if not await leases.hold(session, self.lease.owner, self.job.id, until=until):
                    raise LeaseLost(self.job.id)

    def run_again_at(self, at: datetime) -> None:
        """A job that continues (a delivery pump): on success it is queued again for `at`,
        with fresh attempts, instead of done; its dedupe key stays live throughout."""
        self.again_at = at


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


class UnknownJobKind(LookupError):
    pass


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._retry: dict[str, RetryPolicy] = {}

    def register(self, kind: str, handler: Handler, retry: RetryPolicy | None = None) -> None:
        existing = self._handlers.get(kind)
        if existing is not None and existing is not handler:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self._handlers[kind] = handler
        if retry is not None:
            self._retry[kind] = retry

    def get(self, kind: str) -> Handler:
        try:
            return self._handlers[kind]
        except KeyError:
            raise UnknownJobKind(f"no handler registered for job kind {kind!r}") from None

    def retry_policy(self, kind: str) -> RetryPolicy | None:
        """The kind's own policy, if it registered one (else the dispatcher's default)."""
        return self._retry.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


handlers = HandlerRegistry()


def job_handler(kind: str, *, retry: RetryPolicy | None = None) -> Callable[[Handler], Handler]:
    """Register `async def handler(ctx, payload)` for a dotted job kind, e.g. "shifts.escalate",
    optionally with its own retry policy."""

    def register(handler: Handler) -> Handler:
        handlers.register(kind, handler, retry)
        return handler

    return register
