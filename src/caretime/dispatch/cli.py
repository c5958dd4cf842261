"""`caretime worker` and `caretime jobs list|show|retry|cancel`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.config import get_settings
from caretime.dispatch import operations
from caretime.dispatch.models import Job
from caretime.dispatch.pool import run_worker_process
from caretime.listen import CannotListen
from caretime.metrics_server import DEFAULT_METRICS_HOST, start_metrics_server
from caretime.observability import configure_logging
from caretime.runtime import Runtime

jobs_app = typer.Typer(help="Look at, retry and cancel background jobs.", no_args_is_help=True)
console = Console()
T = TypeVar("T")


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once (default CARETIME_WORKER_CONCURRENCY).")
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics on this port (0: off).")
    ] = 0,
    metrics_host: Annotated[
        str, typer.Option(help="Interface for the metrics port (0.0.0.0: every interface).")
    ] = DEFAULT_METRICS_HOST,
) -> None:
    """Run workers only (no API): claim and run due jobs until SIGTERM."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if metrics_port:
        try:
            start_metrics_server(metrics_host, metrics_port, settings.metrics_token)
        except CannotListen as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from exc
    asyncio.run(
        run_worker_process(settings, concurrency=concurrency or settings.worker_concurrency)
    )


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, done, failed...")] = None,
    kind: Annotated[str | None, typer.Option(help="Job kind, e.g. shifts.escalate.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List jobs, newest first (`--status failed` is the dead-letter queue)."""

    async def work(session: AsyncSession, _runtime: Runtime) -> list[Job]:
        found = await operations.list_jobs(
            session, status=status, kind=kind, tenant_id=tenant, limit=limit
        )
        return list(found)

    table = Table("id", "kind", "status", "run_at", "attempts", "tenant", "last error")
    for job in _run(work):
        table.add_row(
            str(job.id),
            job.kind,
            job.status,
            isoformat_z(job.run_at),
            f"{job.attempts}/{job.max_attempts}",
            job.tenant_id or "-",
            (job.last_error or "")[:60],
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: int) -> None:
    """Show one job, with its payload and last error."""

    async def work(session: AsyncSession, _runtime: Runtime) -> Job:
        return await operations.get_job(session, job_id)

    job = _run(work)
    for name, value in _describe(job).items():
        console.print(f"[bold]{name:>16}[/bold]  {value}", highlight=False)


@jobs_app.command("retry")
def jobs_retry(job_id: int) -> None:
    """Queue a failed or cancelled job again, now, with fresh attempts."""

    async def work(session: AsyncSession, _runtime: Runtime) -> Job:
        return await operations.retry_job(session, job_id)

    console.print(f"job {_run(work).id} queued again")


@jobs_app.command("cancel")
def jobs_cancel(job_id: int) -> None:
    """Cancel a queued job."""

    async def work(session: AsyncSession, _runtime: Runtime) -> Job:
        return await operations.cancel_job(session, job_id)

    console.print(f"job {_run(work).id} cancelled")


def _describe(job: Job) -> dict[str, str]:
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "tenant": job.tenant_id or "-",
        "run_at": _instant(job.run_at),
        "attempts": f"{job.attempts}/{job.max_attempts}",
        "priority": str(job.priority),
        "dedupe_key": job.dedupe_key or "-",
        "lease_owner": job.lease_owner or "-",
        "lease_expires_at": _instant(job.lease_expires_at),
        "created_at": _instant(job.created_at),
        "finished_at": _instant(job.finished_at),
        "payload": json.dumps(job.payload, sort_keys=True),
        "last_error": job.last_error or "-",
    }


def _run(work: Callable[[AsyncSession, Runtime], Awaitable[T]]) -> T:
    from caretime.cli import run_in_session  # caretime.cli imports this module at load

    return run_in_session(work)


def _instant(value: datetime | None) -> str:
    return "-" if value is None else isoformat_z(value)
