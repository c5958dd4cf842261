"""Turning what callers send (JSON items, CSV rows) into planner items, item by item: one
malformed item becomes one rejection, never a failed batch."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caretime.policy import Outcome, PlanItem, Planner, Rejected
from caretime.policy.phones import phone_text

CSV_COLUMNS = {"name", "phone", "scheduled", "tz"}


def plan_item(raw: Any) -> PlanItem | str:
    """A planner item, or why the raw item is not one."""
    if not isinstance(raw, dict):
        return 'an item must be an object with "name" and "phone"'
    name, tz = raw.get("name"), raw.get("tz") or None
    try:
        phone = phone_text(raw.get("phone"))
    except ValueError as exc:
        return f'"phone": {exc}'
    if not isinstance(phone, str) or not phone.strip():
        return 'missing "phone"'
    if not isinstance(name, str):
        return 'missing "name"'
    if tz is not None and not isinstance(tz, str):
        return '"tz" must be an IANA time zone name'
    if any("\x00" in text for text in (name, phone, tz or "")):
        return "text may not contain NUL characters"
    scheduled = _instant(raw.get("scheduled"))
    if isinstance(scheduled, str):
        return scheduled
    return PlanItem(name=name, phone=phone, scheduled=scheduled, tz=tz)


def item_label(position: int) -> str:
    return f"item {position}"


def line_labels(lines: Sequence[int]) -> Callable[[int], str]:
    """Names an item by its CSV line (the header is line 1)."""
    return lambda position: f"line {lines[position]}"


def plan_parsed(
    planner: Planner,
    items: Sequence[PlanItem | str],
    *,
    start: int = 0,
    label: Callable[[int], str] = item_label,
) -> list[Outcome]:
    """Plan the well-formed items; each malformed one is rejected with why, in place. A
    duplicate names the item it repeats as `label` does (an index, or a CSV line)."""
    positions = [start + i for i, item in enumerate(items) if isinstance(item, PlanItem)]
    parsed = [item for item in items if isinstance(item, PlanItem)]
    planned = iter(planner.plan(parsed, positions=positions))
    return [
        _labelled(next(planned), label)
        if isinstance(item, PlanItem)
        else Rejected("invalid_item", item)
        for item in items
    ]


def _labelled(outcome: Outcome, label: Callable[[int], str]) -> Outcome:
    if not isinstance(outcome, Rejected) or outcome.same_as is None:
        return outcome
    where = label(outcome.same_as)
    return outcome._replace(error=f"the same number is already in this batch at {where}")


def _instant(value: Any) -> datetime | str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return '"scheduled" must be an ISO 8601 time'
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return f'"scheduled" is not an ISO 8601 time: {value[:40]!r}'


@dataclass(frozen=True)
class CsvRows:
    """The rows of a CSV as items, and the line each row starts on (the header is line 1)."""

    items: list[dict[str, str]]
    lines: list[int]


def csv_rows(text: str) -> CsvRows:
    """Rows of a CSV with a header naming at least `name` and `phone` (case-insensitive)."""
    rows = CsvRows([], [])
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None:
        return rows
    reader.fieldnames = [field.strip().lower() for field in reader.fieldnames]
    for row in reader:
        values = [v for v in row.values() if isinstance(v, str)]
        # line_num is where the row ends; a quoted value may span lines.
        rows.lines.append(reader.line_num - sum(value.count("\n") for value in values))
        rows.items.append(
            {key: (value or "").strip() for key, value in row.items() if key in CSV_COLUMNS}
        )
    return rows


def missing_csv_columns(text: str) -> set[str]:
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    return {"name", "phone"} - {column.strip().lower() for column in header}


def echo(raw: Any, field: str) -> Any:
    """A field of the item as the caller sent it (for the response, and the batch's stored
    summary), or None. NUL, which no database can store, is shown as U+FFFD; a nested value
    as its JSON text."""
    value = raw.get(field) if isinstance(raw, dict) else None
    if isinstance(value, dict | list):
        value = json.dumps(value)[:200]
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def as_list(items: Iterable[Any]) -> list[Any]:
    return items if isinstance(items, list) else list(items)
