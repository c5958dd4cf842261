"""Turning what callers send (JSON items, CSV rows) into planner items, item by item: one
malformed item becomes one rejection, never a failed batch."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from caretime.policy import Outcome, PlanItem, Planner, Rejected

CSV_COLUMNS = {"name", "phone", "scheduled", "tz"}


def plan_item(raw: Any) -> PlanItem | str:
    """A planner item, or why the raw item is not one."""
    if not isinstance(raw, dict):
        return 'an item must be an object with "name" and "phone"'
    name, phone, tz = raw.get("name"), raw.get("phone"), raw.get("tz") or None
    if not isinstance(phone, str) or not phone.strip():
        return 'missing "phone"'
    if not isinstance(name, str):
        return 'missing "name"'
    if tz is not None and not isinstance(tz, str):
        return '"tz" must be an IANA time zone name'
    scheduled = _instant(raw.get("scheduled"))
    if isinstance(scheduled, str):
        return scheduled
    return PlanItem(name=name, phone=phone, scheduled=scheduled, tz=tz)


def plan_parsed(
    planner: Planner, items: Sequence[PlanItem | str], *, start: int = 0
) -> list[Outcome]:
    """Plan the well-formed items; each malformed one is rejected with why, in place."""
    planned = iter(planner.plan([i for i in items if isinstance(i, PlanItem)], start=start))
    return [
        next(planned) if isinstance(item, PlanItem) else Rejected("invalid_item", item)
        for item in items
    ]


def _instant(value: Any) -> datetime | str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return '"scheduled" must be an ISO 8601 time'
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return f'"scheduled" is not an ISO 8601 time: {value[:40]!r}'


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
