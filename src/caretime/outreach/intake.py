"""Turning what callers send (JSON items, CSV rows) into planner items, item by item: one
malformed item becomes one rejection, never a failed batch."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from caretime.errors import InvalidInput
from caretime.outreach.schemas import ScheduleItem
from caretime.policy import Outcome, PlanItem, Planner, Rejected

CSV_COLUMNS = {"name", "phone", "scheduled", "tz"}
OPTIONAL = {"scheduled", "tz"}


def plan_item(raw: Any) -> PlanItem | str:
    """A planner item, or why the raw item is not one: the same model as POST /calls."""
    if not isinstance(raw, dict):
        return 'an item must be an object with "name" and "phone"'
    try:
        item = ScheduleItem.model_validate(_without_blanks(raw))
    except ValidationError as exc:
        return _in_words(exc.errors()[0])
    if not item.phone.strip():
        return 'missing "phone"'
    return PlanItem(name=item.name, phone=item.phone, scheduled=item.scheduled, tz=item.tz)


def _without_blanks(raw: dict[str, Any]) -> dict[str, Any]:
    """CSV rows and forms send optional fields as empty strings: they mean "not given"."""
    return {k: v for k, v in raw.items() if not (k in OPTIONAL and (v == "" or v is None))}


def _in_words(error: Any) -> str:
    """One validation error as the item's rejection reason, naming the field."""
    field = ".".join(str(part) for part in error["loc"]) or "item"
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return f'missing "{field}"'
    if field == "scheduled":
        shown = f": {value[:40]!r}" if isinstance(value, str) else ""
        return f'"scheduled" is not an ISO 8601 time{shown}'
    if kind == "string_too_long":
        return f'"{field}" is longer than {error["ctx"]["max_length"]} characters'
    if kind == "string_type":
        return f'"{field}" must be text'
    return f'"{field}": {error["msg"]}'


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
    for row in _rows_of(reader):
        values = [v for v in row.values() if isinstance(v, str)]
        # line_num is where the row ends; a quoted value may span lines.
        rows.lines.append(reader.line_num - sum(value.count("\n") for value in values))
        rows.items.append(
            {key: (value or "").strip() for key, value in row.items() if key in CSV_COLUMNS}
        )
    return rows


def _rows_of(reader: csv.DictReader[str]) -> Iterator[dict[str | Any, str | Any]]:
    """The reader's rows; a line the csv module cannot read is refused naming the line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read at line {reader.line_num}: {exc}") from None


def missing_csv_columns(text: str) -> set[str]:
    try:
        header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read at line 1: {exc}") from None
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
