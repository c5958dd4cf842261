"""`caretime plan patients.csv`: plan a call schedule offline, as the server would for the
tenant (its policy from a file or the database), without writing anything."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from caretime.clock import isoformat_z
from caretime.errors import InvalidInput
from caretime.outreach.intake import (
    CsvRows,
    check_scripts,
    csv_rows,
    line_labels,
    parse_item,
    plan_parsed,
)
from caretime.outreach.plan_inputs import (
    Overrides,
    PlanInputError,
    calling_policy,
    plan_moment,
    read_patients,
)
from caretime.policy import Outcome, Planner, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

app = typer.Typer()
console = Console()
CHUNK = 10_000
OUT_COLUMNS = ("name", "phone", "phone_e164", "tz", "scheduled", "status", "error")
MAX_HOURS_SHOWN = 24
# The per-hour table fits 80 columns: the hour, this many zones, and the rest summed.
MAX_ZONES_SHOWN = 3
ZONE_WIDTH = 11


@app.command()
def plan(
    patients: Annotated[Path, typer.Argument(help="CSV with name, phone, scheduled?, tz?.")],
    out: Annotated[Path | None, typer.Option(help="Write the schedule here as CSV.")] = None,
    policy: Annotated[
        Path | None, typer.Option(help="The tenant's policy, as GET /tenants/me/policy gives.")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Read this tenant's policy.")] = None,
    strategy: Annotated[str | None, typer.Option(help="earliest or spread.")] = None,
    max_per_minute: Annotated[int | None, typer.Option(help="Calls per minute.")] = None,
    horizon_days: Annotated[int | None, typer.Option(help="Plan this far ahead.")] = None,
    now: Annotated[str | None, typer.Option(help="Plan as of this ISO instant.")] = None,
    default_tz: Annotated[
        str | None, typer.Option(help="Zone for numbers without one (e.g. toll-free).")
    ] = None,
) -> None:
    """Plan calls for a CSV of patients offline (no database writes) and summarise them."""
    overrides = Overrides(strategy, max_per_minute, horizon_days, default_tz)
    try:
        text = read_patients(patients)
        calling = calling_policy(policy, tenant, overrides)
        moment = plan_moment(now)
        rows = csv_rows(text)
    except (PlanInputError, InvalidInput) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    outcomes = _plan_with_progress(rows, calling, Planner(calling, now=moment))
    if out is not None:
        _write_schedule(out, rows.items, outcomes)
    _print_summary(outcomes)


def _plan_with_progress(rows: CsvRows, calling: CallingPolicy, planner: Planner) -> list[Outcome]:
    outcomes: list[Outcome] = []
    label = line_labels(rows.lines)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("planning", total=len(rows.items))
        for start in range(0, len(rows.items), CHUNK):
            chunk = [parse_item(row) for row in rows.items[start : start + CHUNK]]
            checked = check_scripts(chunk, calling.scripts)
            outcomes += plan_parsed(planner, checked, start=start, label=label)
            progress.advance(task, len(chunk))
    return outcomes


def _write_schedule(out: Path, rows: Sequence[dict[str, Any]], outcomes: Sequence[Outcome]) -> None:
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=OUT_COLUMNS)
        writer.writeheader()
        for row, outcome in zip(rows, outcomes, strict=True):
            writer.writerow(_out_row(row, outcome))


def _out_row(row: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
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
    console.print(per_hour_table([o for o in outcomes if isinstance(o, Scheduled)]))


def per_hour_table(scheduled: Sequence[Scheduled]) -> Table:
    """Calls per UTC hour per zone: the busiest zones as columns, every other zone summed in
    one "N more zones" column, so that it fits 80 columns whatever the batch."""
    per_zone = Counter(o.tz for o in scheduled)
    ranked = [zone for zone, _ in per_zone.most_common()]
    shown, rest = ranked[:MAX_ZONES_SHOWN], set(ranked[MAX_ZONES_SHOWN:])
    cells = Counter((o.at.strftime("%Y-%m-%d %H:00Z"), o.tz) for o in scheduled)
    hours = sorted({hour for hour, _ in cells})
    headers = [_short(zone) for zone in shown]
    if rest:
        headers.append(f"{len(rest)} more zones")
    table = Table("hour (UTC)", *headers, title="Calls per hour per time zone")
    for hour in hours[:MAX_HOURS_SHOWN]:
        counts = [cells[(hour, zone)] for zone in shown]
        if rest:
            counts.append(sum(cells[(hour, zone)] for zone in rest))
        table.add_row(hour, *(f"{count:,}" for count in counts))
    table.caption = _caption(len(hours), per_zone, rest)
    return table


def _caption(hours: int, per_zone: Counter[str], rest: set[str]) -> str | None:
    parts = []
    if hours > MAX_HOURS_SHOWN:
        parts.append(f"first {MAX_HOURS_SHOWN} of {hours} hours shown")
    if rest:
        parts.append(f"{len(rest)} more zones: {sum(per_zone[z] for z in rest):,} calls")
    return "; ".join(parts) or None


def _short(zone: str) -> str:
    """A zone as a column header: its city, cut to fit (America/Los_Angeles → Los_Angeles)."""
    return zone.rsplit("/", 1)[-1][:ZONE_WIDTH]
