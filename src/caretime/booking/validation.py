"""Availability submissions checked against the slot grid, with errors that name the window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from caretime.booking.errors import InvalidWindows
from caretime.booking.intervals import Span
from caretime.booking.schemas import DatedWindowIn, WeeklyTemplateIn, WindowIn
from caretime.fielderrors import field_errors

WHOLE_DAY: Span = (0, 24 * 60)
_WINDOW: TypeAdapter[WindowIn] = TypeAdapter(WindowIn)


def read_windows(body: Any, slot_minutes: int) -> list[WindowIn]:
    """A submission (one window or a list) read item by item, so that one badly shaped item
    does not hide the other items' problems: every error of every item is reported at once."""
    many = isinstance(body, list)
    items: list[WindowIn] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(body if many else [body]):
        where = ("body", index) if many else ("body",)
        try:
            item = _WINDOW.validate_python(raw)
        except ValidationError as exc:
            errors += field_errors(exc.errors(), prefix=where)
            continue
        items.append(item)
        errors += [{"loc": [*where, f], "msg": msg} for f, msg in _check(item, slot_minutes)[1]]
    if errors:
        raise InvalidWindows(_detail(errors), errors=errors)
    return items


def validate_windows(items: Sequence[WindowIn], slot_minutes: int) -> list[Span]:
    """Each item's span in minutes, or InvalidWindows listing every problem by window."""
    spans: list[Span] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        span, problems = _check(item, slot_minutes)
        spans.append(span)
        errors += [{"loc": ["body", index, field], "msg": msg} for field, msg in problems]
    if errors:
        raise InvalidWindows(_detail(errors), errors=errors)
    return spans


def _detail(errors: Sequence[dict[str, Any]]) -> str:
    return "; ".join(f"{_window_name(e['loc'])}: {e['msg']}" for e in errors[:5])


def _window_name(loc: Sequence[Any]) -> str:
    index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    field = ".".join(str(part) for part in loc[1 if index is None else 2 :])
    name = "the window" if index is None else f"window {index}"
    return f"{name} {field}".strip()


def _check(item: WindowIn, slot_minutes: int) -> tuple[Span, list[tuple[str, str]]]:
    if isinstance(item, DatedWindowIn) and item.start is None and item.end is None:
        if item.action == "remove":
            return WHOLE_DAY, []
        return WHOLE_DAY, [("start", "a window needs a start and an end")]
    if item.start is None or item.end is None:
        return WHOLE_DAY, [("start" if item.start is None else "end", "give both start and end")]
    span = (to_minute(item.start), to_minute(item.end))
    problems = [*_grid_problems(item.start, item.end, span, slot_minutes)]
    until = item.valid_until if isinstance(item, WeeklyTemplateIn) else None
    if isinstance(item, WeeklyTemplateIn) and until is not None and until < item.valid_from:
        problems.append(("until", f"until {until} is before from {item.valid_from}"))
    return span, problems


def _grid_problems(start: str, end: str, span: Span, slot_minutes: int) -> list[tuple[str, str]]:
    if span[1] <= span[0]:
        return [("end", f"end {end} is not after start {start}")]
    problems = [
        (name, f"{name} {text} is not on the {slot_minutes}-minute slot grid")
        for name, text, minute in (("start", start, span[0]), ("end", end, span[1]))
        if minute % slot_minutes
    ]
    if span[1] - span[0] < slot_minutes:
        problems.append(("end", f"{start}–{end} is shorter than one {slot_minutes}-minute slot"))
    return problems


def to_minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)
