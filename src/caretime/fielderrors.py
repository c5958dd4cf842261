"""Validation errors in the caller's words: where (a path through *their* JSON) and what.

Pydantic's own error locations carry internal parts (`list[union[WeeklyTemplateIn,...]]`,
model class names as union tags, `function-after[...]`) and its messages name our classes
("instance of DatedWindowIn") or start with "Value error, ". None of that means anything to
a caller, so every validation error passes through `field_errors` before it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel

# Messages by pydantic error type where its own text names an internal class or tag.
_PLAIN_MESSAGES = {
    "model_type": "expected a JSON object",
    "model_attributes_type": "expected a JSON object",
    "dict_type": "expected a JSON object",
    "union_tag_invalid": "this item is not shaped like any accepted form",
    "union_tag_not_found": "this item is not shaped like any accepted form",
}
_PREFIXES = ("Value error, ", "Assertion failed, ")


def field_errors(
    errors: Iterable[Mapping[str, Any]], prefix: Sequence[str | int] = ()
) -> list[dict[str, Any]]:
    """Each error as {"loc", "msg"} in the caller's terms, without repeats."""
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    result = []
    for error in errors:
        loc = (*prefix, *user_loc(error.get("loc", ())))
        msg = user_message(error)
        if (loc, msg) not in seen:
            seen.add((loc, msg))
            result.append({"loc": list(loc), "msg": msg})
    return result


def user_loc(loc: Iterable[str | int]) -> tuple[str | int, ...]:
    return tuple(part for part in loc if not _is_internal(part))


def user_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") in _PLAIN_MESSAGES:
        return _PLAIN_MESSAGES[error["type"]]
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def where(errors: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """'body.0.start, body.2' — the first few locations, for a one-line detail."""
    return ", ".join(".".join(str(part) for part in e["loc"]) for e in errors[:limit])


def _is_internal(part: str | int) -> bool:
    # Pydantic's structural parts, and our own union tags, are written in brackets.
    return isinstance(part, str) and ("[" in part or part in _model_names())


@cache
def _model_names() -> frozenset[str]:
    names: set[str] = set()
    pending: list[type[BaseModel]] = [BaseModel]
    while pending:
        model = pending.pop()
        for sub in model.__subclasses__():
            if sub.__name__ not in names:
                names.add(sub.__name__)
                pending.append(sub)
    return frozenset(names)
