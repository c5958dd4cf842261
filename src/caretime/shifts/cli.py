"""`caretime import shifts FILE.json`: load caregivers and shifts, report every record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.runtime import Runtime
from caretime.shifts.importer import RecordReport, import_document
from caretime.tenancy import service as tenancy

import_app = typer.Typer(
    help="Import data from the systems caretime replaces.", no_args_is_help=True
)
console = Console()


@import_app.command("shifts")
def import_shifts(
    file: Annotated[
        Path, typer.Argument(help='A JSON file: {"caregivers": [...], "shifts": [...]}.')
    ],
    tenant: Annotated[
        str | None, typer.Option(help="Tenant name (default: the configured default tenant).")
    ] = None,
) -> None:
    """Import caregivers and shifts; records that cannot be imported are reported, not fatal."""
    from caretime.cli import run_in_session

    try:
        document = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        console.print(f"[red]error:[/red] cannot read {file}: {exc}")
        raise typer.Exit(1) from exc

    async def work(session: AsyncSession, runtime: Runtime) -> list[RecordReport]:
        owner = await tenancy.require_tenant(session, tenant or runtime.settings.default_tenant)
        policy = tenancy.policy_of(owner).shifts
        return await import_document(
            session, owner.id, document, policy=policy, now=runtime.clock.now()
        )

    print_report(run_in_session(work))


def print_report(reports: list[RecordReport]) -> None:
    """One line per record (grep-friendly, never wrapped), then a summary."""
    for report in reports:
        colour = {"imported": "green", "exists": "yellow", "rejected": "red"}[report.outcome]
        why = "; ".join(report.reasons + report.notes)
        line = f"{report.kind} #{report.index + 1} {report.id or '(no id)'}: "
        line += f"[{colour}]{report.outcome}[/{colour}]" + (f" — {why}" if why else "")
        console.print(line, soft_wrap=True, highlight=False)
    console.print(_summary(reports))


def _summary(reports: list[RecordReport]) -> str:
    parts = []
    for outcome in ("imported", "exists", "rejected"):
        for kind in ("caregiver", "shift"):
            count = sum(1 for r in reports if r.outcome == outcome and r.kind == kind)
            if count:
                label = "already present" if outcome == "exists" else outcome
                parts.append(f"{count} {kind}{'s' if count != 1 else ''} {label}")
    return ", ".join(parts) or "nothing to import"
