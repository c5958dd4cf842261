"""Seeding data for browser tests from the test thread, beside the live server's own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from tests.conftest import LiveServer

T = TypeVar("T")


def seed(server: LiveServer, work: Callable[[AsyncSession, str], Awaitable[T]]) -> T:
    """Run `work(session, default_tenant_id)` in one committed transaction on the server's
    database, through a runtime of our own (the server's belongs to its thread's loop)."""

    async def main() -> T:
        runtime = Runtime.build(server.runtime.settings)
        try:
            async with transaction(runtime.sessions) as session:
                tenant = await tenancy.require_tenant(session, runtime.settings.default_tenant)
                return await work(session, tenant.id)
        finally:
            await runtime.close()

    # Playwright's sync API keeps an event loop marked running in this thread: use another.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()
