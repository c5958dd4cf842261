"""Turning what callers send (JSON items, CSV rows) into planner items, item by item: one
malformed item becomes one rejection, never a failed batch."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from caretime.errors import InvalidInput
from caretime.outreach.content import (
    MAX_VARIABLES,
    NO_CONTENT,
    VARIABLE_NAME,
    CallContent,
    checked_content,
    script_problem,
)
from caretime.outreach.recurrence import checked_rule
from caretime.policy import Outcome, PlanItem, Planner, Rejected
from caretime.policy.phones import phone_text

# The fields an item may have; any other is an error on that item, never silently dropped.
ITEM_FIELDS = frozenset(
    {"name", "phone", "scheduled", "tz", "purpose", "script", "variables", "allow_duplicate",
     "recurrence"}
)  # fmt: skip
CONTENT_FIELDS = frozenset({"purpose", "script", "variables"})
# CSV columns that are item fields; every other column is a variable of the row's call.
CSV_FIELDS = (
    "name", "phone", "scheduled", "tz", "purpose", "script", "allow_duplicate", "recurrence"
)  # fmt: skip


class ParsedItem(NamedTuple):
    plan: PlanItem
    content: CallContent
    # A checked RRULE (recurrence.checked_rule): the item starts a series of calls.
    recurrence: str | None = None


# An item on its way through intake: parsed, or rejected (with a code) before planning.
Intake = ParsedItem | Rejected


def parse_item(raw: Any, *, allow_duplicate: bool = False) -> Intake:
    """A planner item and its content, or why the raw item is not one. `allow_duplicate` is
    the batch's default for items that do not say."""
    # The hot loop of a big batch (10,000 items): checks that allocate nothing come first.
    if not isinstance(raw, dict):
        return _invalid('an item must be an object with "name" and "phone"')
    if not raw.keys() <= ITEM_FIELDS:
        return _invalid(_unknown_fields(raw.keys() - ITEM_FIELDS))
    plan = _plan_fields(raw, allow_duplicate)
    if isinstance(plan, str):
        return _invalid(plan)
    recurrence = raw.get("recurrence")
    rule = None if recurrence is None else _recurrence(recurrence)
    if isinstance(rule, Rejected):
        return rule
    if CONTENT_FIELDS.isdisjoint(raw):  # the usual bulk item: no content to check
        return ParsedItem(plan, NO_CONTENT, rule)
    try:
        content = checked_content(raw)
    except ValueError as exc:
        return _invalid(str(exc))
    return ParsedItem(plan._replace(purpose=content.purpose), content, rule)


def _recurrence(value: Any) -> str | Rejected | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return _invalid('"recurrence" must be an RRULE text, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=8')
    try:
        return checked_rule(value)
    except ValueError as exc:
        return _invalid(f'"recurrence" cannot be used: {exc}')


def check_scripts(items: list[Intake], defaults: Mapping[str, str]) -> list[Intake]:
    """Each item whose script (its own or the tenant's default for its purpose) names a
    variable the item lacks becomes a rejection."""
    return [_with_script_checked(item, defaults) for item in items]


def _with_script_checked(item: Intake, defaults: Mapping[str, str]) -> Intake:
    if not isinstance(item, ParsedItem) or (item.content is NO_CONTENT and "" not in defaults):
        return item
    problem = script_problem(item.content, defaults)
    return item if problem is None else _invalid(problem)


def plan_item(raw: Any) -> PlanItem | str:
    """A planner item, or why the raw item is not one (`caretime plan`: no content kept)."""
    parsed = parse_item(raw)
    return parsed.plan if isinstance(parsed, ParsedItem) else parsed.error


def _plan_fields(raw: dict[str, Any], allow_duplicate: bool) -> PlanItem | str:
    name, phone, tz = raw.get("name"), raw.get("phone"), raw.get("tz") or None
    if type(phone) is not str:
        try:
            phone = phone_text(phone)
        except ValueError as exc:
            return str(exc)
    if not isinstance(phone, str) or not phone.strip():
        return 'missing "phone"'
    if not isinstance(name, str):
        return 'missing "name"'
    if tz is not None and not isinstance(tz, str):
        return '"tz" must be an IANA time zone name'
    if len(name) > 200 or len(phone) > 64 or len(tz or "") > 64:  # (the rare case first)
        too_long = _too_long(name=(name, 200), phone=(phone, 64), tz=(tz or "", 64))
        if too_long is not None:
            return too_long
    value = raw.get("scheduled")
    scheduled = None if value is None else _instant(value)
    if isinstance(scheduled, str):
        return scheduled
    value = raw.get("allow_duplicate")
    allow = allow_duplicate if value is None else _flag(value, allow_duplicate)
    if allow is None:
        return '"allow_duplicate" must be true or false'
    return PlanItem(name, phone, scheduled, tz, "", allow)


def _too_long(**fields: tuple[str, int]) -> str | None:
    """The limits of POST /calls' model, so that a batch item and a call agree."""
    for name, (value, limit) in fields.items():
        if len(value) > limit:
            return f'"{name}" is longer than {limit} characters'
    return None


def _flag(value: Any, default: bool) -> bool | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    return None


def _unknown_fields(unknown: set[str]) -> str:
    names = ", ".join(f'"{name[:40]}"' for name in sorted(unknown)[:5])
    known = ", ".join(sorted(ITEM_FIELDS))
    return f"unknown field(s) {names}: an item has {known}"


def _invalid(error: str) -> Rejected:
    return Rejected("invalid_item", error)


def item_label(position: int) -> str:
    return f"item {position}"


def line_labels(lines: Sequence[int]) -> Callable[[int], str]:
    """Names an item by its CSV line (the header is line 1)."""
    return lambda position: f"line {lines[position]}"


def plan_parsed(
    planner: Planner,
    items: Sequence[PlanItem | Intake | str],
    *,
    start: int = 0,
    label: Callable[[int], str] | None = None,
) -> list[Outcome]:
    """Plan the well-formed items; each one rejected before planning stays rejected, in place.
    A duplicate names the item it repeats as `label` does (an index, or a CSV line)."""
    plans = [_plan_of(item) for item in items]
    positions = [start + i for i, plan in enumerate(plans) if isinstance(plan, PlanItem)]
    parsed = [plan for plan in plans if isinstance(plan, PlanItem)]
    planned = iter(planner.plan(parsed, positions=positions))
    return [_labelled(next(planned), label) if isinstance(p, PlanItem) else p for p in plans]


def _labelled(outcome: Outcome, label: Callable[[int], str] | None) -> Outcome:
    if label is None or not isinstance(outcome, Rejected) or outcome.same_as is None:
        return outcome
    here, where = f"at item {outcome.same_as}", f"at {label(outcome.same_as)}"
    return outcome._replace(error=outcome.error.replace(here, where))


def _plan_of(item: PlanItem | Intake | str) -> PlanItem | Rejected:
    if isinstance(item, ParsedItem):
        return item.plan
    return _invalid(item) if isinstance(item, str) else item


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

    items: list[dict[str, Any]]
    lines: list[int]


def csv_rows(text: str) -> CsvRows:
    """Rows of a CSV with a header naming at least `name` and `phone` (case-insensitive) as
    items: the item fields by name, every other non-empty column as a variable."""
    rows = CsvRows([], [])
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None:
        return rows
    reader.fieldnames = [field.strip() for field in reader.fieldnames]
    fields = {name: name.lower() for name in reader.fieldnames if name.lower() in CSV_FIELDS}
    for row in _rows_of(reader):
        values = [v for v in row.values() if isinstance(v, str)]
        # line_num is where the row ends; a quoted value may span lines.
        rows.lines.append(reader.line_num - sum(value.count("\n") for value in values))
        rows.items.append(_csv_item(row, fields))
    return rows


def _rows_of(reader: csv.DictReader[str]) -> Iterator[dict[str | Any, str | Any]]:
    """The reader's rows; a line the csv module cannot read is refused naming the line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read at line {reader.line_num}: {exc}") from None


def _csv_item(row: dict[str | None, Any], fields: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for column, value in row.items():
        text = value.strip() if isinstance(value, str) else ""
        if column in fields:
            item[fields[column]] = text
        elif column and text:  # a cell beyond the header has no column name: dropped
            variables[column] = text
    if variables:
        item["variables"] = variables
    for optional in ("purpose", "script", "recurrence"):
        if item.get(optional) == "":
            del item[optional]
    return item


def missing_csv_columns(text: str) -> set[str]:
    return {"name", "phone"} - {column.lower() for column in _csv_header(text)}


def csv_header_problem(text: str) -> str | None:
    """What is wrong with the CSV's header as a whole (so no row is blamed for it), if
    anything: a required column missing, or a variable column with an unusable name."""
    missing = missing_csv_columns(text)
    if missing:
        return f"the CSV header lacks column(s): {', '.join(sorted(missing))}"
    header = _csv_header(text)
    variables = [c for c in header if c and c.lower() not in CSV_FIELDS]
    bad = [c for c in variables if not VARIABLE_NAME.fullmatch(c)]
    if bad:
        names = ", ".join(repr(c[:40]) for c in bad[:5])
        return (
            f"CSV column(s) {names} cannot be variable names: use letters, digits and _ "
            "(at most 40), not starting with a digit"
        )
    if len(variables) > MAX_VARIABLES:
        return f"the CSV has more than {MAX_VARIABLES} variable columns"
    return None


def _csv_header(text: str) -> list[str]:
    try:
        header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read at line 1: {exc}") from None
    return [column.strip() for column in header]


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
