"""Form input at the edge: local wall-clock times from `datetime-local` inputs, lists typed as
text, and request models built from form fields with errors the viewer can act on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from caretime.errors import InvalidInput
from caretime.fielderrors import field_errors
from caretime.web.session import parse_zone

M = TypeVar("M", bound=BaseModel)


def local_instant(value: str, zone_name: str) -> datetime:
    """`2026-03-03T09:00` on the wall clock of `zone_name` → an aware instant. In a DST
    overlap the first occurrence is meant (fold=0), as a scheduler would read it."""
    zone = parse_zone(zone_name)
    if zone is None:
        raise InvalidInput(f"{zone_name!r} is not a time zone name such as America/New_York")
    try:
        wall = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date and time") from None
    if wall.tzinfo is not None:
        raise InvalidInput("give the time without an offset; the zone says where it is")
    return wall.replace(tzinfo=zone)


def text_list(value: str) -> list[str]:
    """`RN, LPN` → ["RN", "LPN"]."""
    return [item.strip() for item in value.replace(";", ",").split(",") if item.strip()]


def build(model: type[M], fields: dict[str, Any]) -> M:
    """Validate form fields into a request model; empty fields count as not given."""
    given = {name: value for name, value in fields.items() if value not in ("", None)}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise InvalidInput(describe(errors), errors=errors) from None


def describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"]).replace("_", " ")
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)
