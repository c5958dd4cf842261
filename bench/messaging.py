"""Messaging benchmark: a shift fan-out of 5,000 SMS, queued in one transaction and handed
to the simulator by the dispatcher. Run: `python bench/messaging.py` (SQLite in a temp dir;
set CARETIME_BENCH_DATABASE_URL to an empty, migrated database to measure another)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from caretime import migrate
from caretime.config import Settings
from caretime.db import transaction
from caretime.dispatch.worker import Dispatcher
from caretime.messaging import Message, OutgoingMessage, queue_messages
from caretime.models import import_all_handlers
from caretime.runtime import Runtime
from caretime.tenancy.service import create_tenant

FANOUT = int(os.environ.get("CARETIME_BENCH_FANOUT", "5000"))
TARGET_SECONDS = 2.0
# SQLite has one writer: concurrent job transactions only queue on its lock.
CONCURRENCY = int(os.environ.get("CARETIME_BENCH_CONCURRENCY", "1"))


async def main(url: str) -> None:
    import_all_handlers()
    runtime = Runtime.build(Settings(database_url=url, workers=0))
    await migrate.upgrade(runtime.engine)
    async with transaction(runtime.sessions) as session:
        tenant = await create_tenant(session, f"bench-{time.time_ns()}", now=runtime.clock.now())
    outgoing = [
        OutgoingMessage("sms", f"+1206{i:07d}", "Open RN shift tomorrow 8-4. Reply YES.", f"b:{i}")
        for i in range(FANOUT)
    ]
    started = time.perf_counter()
    async with transaction(runtime.sessions) as session:
        await queue_messages(session, tenant_id=tenant.id, outgoing=outgoing)
    queued = time.perf_counter() - started
    jobs = await Dispatcher(runtime, concurrency=CONCURRENCY, batch_size=500).run_pending()
    total = time.perf_counter() - started
    async with runtime.sessions() as session:
        handed = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.tenant_id == tenant.id, Message.provider_id.is_not(None))
        )
    await runtime.close()
    print(f"database: {url.split(':')[0]}")
    print(
        f"queue {FANOUT} messages (rows + jobs, one transaction): {queued:.2f} s "
        f"({FANOUT / queued:,.0f}/s)"
    )
    print(
        f"all {handed} handed to the simulator by {jobs} jobs: {total:.2f} s "
        f"({FANOUT / total:,.0f}/s); target {TARGET_SECONDS:.1f} s, "
        f"ratio {TARGET_SECONDS / total:.2f}x of target speed"
    )


if __name__ == "__main__":
    configured = os.environ.get("CARETIME_BENCH_DATABASE_URL")
    if configured:
        asyncio.run(main(configured))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            asyncio.run(main(f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}"))
