"""A real worker process for multi-process tests: `python -m tests.dispatch.worker_process URL`.

It runs the same code as `caretime worker`, plus two test job kinds whose effect is a row
per job in `dispatch_test_effects` that counts how many times the job's work committed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from caretime.config import Settings
from caretime.dispatch import JobContext, job_handler
from caretime.dispatch.pool import run_worker_process
from caretime.observability import configure_logging

EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS dispatch_test_effects (
    job_id BIGINT PRIMARY KEY, runs INTEGER NOT NULL, worker_pid INTEGER NOT NULL
)
"""
_RECORD = text(
    "INSERT INTO dispatch_test_effects (job_id, runs, worker_pid) VALUES (:job_id, 1, :pid) "
    "ON CONFLICT (job_id) DO UPDATE SET runs = dispatch_test_effects.runs + 1"
)


@job_handler("tests.effect")
async def effect(ctx: JobContext, payload: dict[str, Any]) -> None:
    # Commits still happen in order and atomically; only the wait for the disk flush goes,
    # which on a busy shared test server is most of the test's time. Not tested here.
    await ctx.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    await ctx.session.execute(_RECORD, {"job_id": ctx.job.id, "pid": os.getpid()})


@job_handler("tests.hang_on_first_attempt")
async def hang_on_first_attempt(ctx: JobContext, payload: dict[str, Any]) -> None:
    if ctx.job.attempts == 1:
        await asyncio.Event().wait()  # until this process is killed
    await effect(ctx, payload)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--lease", type=float, default=30.0)
    args = parser.parse_args()
    settings = Settings(env="test", database_url=args.database_url, workers=0)
    configure_logging("INFO", as_json=True)
    lease = timedelta(seconds=args.lease)
    asyncio.run(
        run_worker_process(settings, concurrency=args.concurrency, lease=lease, heartbeat=lease / 4)
    )


if __name__ == "__main__":
    main()
