"""`caretime prune [--dry-run]`, and `caretime worker`, which also keeps the daily prune queued."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from caretime import migrate
from caretime.config import get_settings
from caretime.dispatch import cli as dispatch_cli
from caretime.models import import_all_handlers
from caretime.retention.prune import Found, ensure_scheduled, prune
from caretime.runtime import Runtime

app = typer.Typer()
console = Console(soft_wrap=True)


@app.command("prune")
def prune_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
) -> None:
    """Delete what each tenant's retention policy lets go (the daily job does this too)."""
    found = asyncio.run(_with_runtime(lambda runtime: prune(
        runtime, now=runtime.clock.now(), dry_run=dry_run)))  # fmt: skip
    table = Table("tenant", "table", "older than", "would delete" if dry_run else "deleted")
    for f in found:
        table.add_row(f.tenant_id or "(system)", f.table, f.older_than.isoformat(), str(f.rows))
    console.print(table if found else "Nothing to prune.")


@app.command("worker")
@functools.wraps(dispatch_cli.worker)
def worker(*args: Any, **kwargs: Any) -> None:
    asyncio.run(_with_runtime(ensure_scheduled))
    dispatch_cli.worker(*args, **kwargs)


async def _with_runtime(work: Any) -> list[Found]:
    import_all_handlers()  # the domains register their prunable tables on import
    runtime = Runtime.build(get_settings())
    try:
        if runtime.settings.is_sqlite:
            await migrate.upgrade(runtime.engine)
        result: list[Found] = await work(runtime)
        return result
    finally:
        await runtime.close()
