"""`caretime plan patients.csv`: plan a call schedule offline, with no database at all."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from caretime.clock import SystemClock, isoformat_z
from caretime.outreach.intake import (
    CsvRows,
    csv_rows,
    line_labels,
    missing_csv_columns,
    plan_item,
    plan_parsed,
)
from caretime.policy import Outcome, Planner, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

app = typer.Typer()
console = Console()
CHUNK = 10_000
OUT_COLUMNS = ("name", "phone", "phone_e164", "tz", "scheduled", "status", "error")
MAX_HOURS_SHOWN = 24
MAX_ZONES_SHOWN = 6


@app.command()
def plan(
    patients: Annotated[Path, typer.Argument(help="CSV with name, phone, scheduled?, tz?.")],
    out: Annotated[Path | None, typer.Option(help="Write the schedule here as CSV.")] = None,
    strategy: Annotated[str, typer.Option(help="earliest or spread.")] = "earliest",
    max_per_minute: Annotated[int, typer.Option(help="Calls per minute.")] = 100,
    horizon_days: Annotated[int, typer.Option(help="Plan at most this far ahead.")] = 14,
    now: Annotated[str | None, typer.Option(help="Plan as of this ISO instant.")] = None,
    default_tz: Annotated[
        str | None, typer.Option(help="Zone for numbers without one (e.g. toll-free).")
    ] = None,
) -> None:
    """Plan calls for a CSV of patients offline (no database writes) and summarise them."""
    text = patients.read_text(encoding="utf-8-sig")
    missing = missing_csv_columns(text)
    if missing or strategy not in ("earliest", "spread"):
        problem = f"missing column(s) {', '.join(sorted(missing))}" if missing else "bad strategy"
        console.print(f"[red]error:[/red] {problem}")
        raise typer.Exit(2)
    calling = CallingPolicy.model_validate(
        {"strategy": strategy, "max_calls_per_minute": max_per_minute,
         "horizon_days": horizon_days, "default_tz": default_tz}
    )  # fmt: skip
    moment = datetime.fromisoformat(now) if now else SystemClock().now()
    rows = csv_rows(text)
    outcomes = _plan_with_progress(rows, Planner(calling, now=moment))
    if out is not None:
        _write_schedule(out, rows.items, outcomes)
    _print_summary(outcomes)


def _plan_with_progress(rows: CsvRows, planner: Planner) -> list[Outcome]:
    outcomes: list[Outcome] = []
    label = line_labels(rows.lines)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("planning", total=len(rows.items))
        for start in range(0, len(rows.items), CHUNK):
            chunk = [plan_item(row) for row in rows.items[start : start + CHUNK]]
            outcomes += plan_parsed(planner, chunk, start=start, label=label)
            progress.advance(task, len(chunk))
    return outcomes


def _write_schedule(out: Path, rows: Sequence[dict[str, str]], outcomes: Sequence[Outcome]) -> None:
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=OUT_COLUMNS)
        writer.writeheader()
        for row, outcome in zip(rows, outcomes, strict=True):
            writer.writerow(_out_row(row, outcome))


def _out_row(row: dict[str, str], outcome: Outcome) -> dict[str, Any]:
    base = {"name": row.get("name", ""), "phone": row.get("phone", ""), "status": outcome.status}
    if isinstance(outcome, Rejected):
        return {**base, "error": outcome.error}
    return {**base, "phone_e164": outcome.e164, "tz": outcome.tz,
            "scheduled": isoformat_z(outcome.at)}  # fmt: skip


def _print_summary(outcomes: Sequence[Outcome]) -> None:
    by_status = Counter(o.status if isinstance(o, Scheduled) else f"rejected: {o.code}"
                        for o in outcomes)  # fmt: skip
    table = Table("status / reason", "items", title="Plan")
    for label, count in sorted(by_status.items()):
        table.add_row(label, f"{count:,}")
    console.print(table)
    console.print(_per_hour_table([o for o in outcomes if isinstance(o, Scheduled)]))


def _per_hour_table(scheduled: Sequence[Scheduled]) -> Table:
    per_zone = Counter(o.tz for o in scheduled)
    zones = [zone for zone, _ in per_zone.most_common(MAX_ZONES_SHOWN)]
    cells = Counter((o.at.strftime("%Y-%m-%d %H:00Z"), o.tz) for o in scheduled)
    hours = sorted({hour for hour, _ in cells})
    table = Table("hour (UTC)", *zones, title="Calls per hour per time zone")
    for hour in hours[:MAX_HOURS_SHOWN]:
        table.add_row(hour, *(f"{cells[(hour, zone)]:,}" for zone in zones))
    if len(hours) > MAX_HOURS_SHOWN:
        table.caption = f"first {MAX_HOURS_SHOWN} of {len(hours)} hours shown"
    return table
