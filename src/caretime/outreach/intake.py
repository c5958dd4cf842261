"""Turning what callers send (JSON items, CSV rows) into planner items, item by item: one
malformed item becomes one rejection, never a failed batch."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import ValidationError

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


def plan_parsed(
    planner: Planner, items: Sequence[PlanItem | str], *, start: int = 0
) -> list[Outcome]:
    """Plan the well-formed items; each malformed one is rejected with why, in place."""
    planned = iter(planner.plan([i for i in items if isinstance(i, PlanItem)], start=start))
    return [
        next(planned) if isinstance(item, PlanItem) else Rejected("invalid_item", item)
        for item in items
    ]


def csv_items(text: str) -> Iterator[dict[str, str]]:
    """Rows of a CSV with a header naming at least `name` and `phone` (case-insensitive)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None:
        return
    reader.fieldnames = [field.strip().lower() for field in reader.fieldnames]
    for row in reader:
        yield {key: (value or "").strip() for key, value in row.items() if key in CSV_COLUMNS}


def missing_csv_columns(text: str) -> set[str]:
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    return {"name", "phone"} - {column.strip().lower() for column in header}


def echo(raw: Any, field: str) -> Any:
    """A field of the item as the caller sent it (for the response), or None."""
    return raw.get(field) if isinstance(raw, dict) else None


def as_list(items: Iterable[Any]) -> list[Any]:
    return items if isinstance(items, list) else list(items)
