"""What a call is for and what it says: purpose, script and variables, checked at intake and
rendered when the call is placed. Pure functions; every refusal is a sentence for the caller."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

MAX_PURPOSE = 64
MAX_SCRIPT = 2000
MAX_VARIABLES = 50
MAX_VARIABLE_VALUE = 500
_PURPOSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Variables every call has without the caller naming them.
BUILT_IN = frozenset({"name"})

Variables = dict[str, str | int | float]


class CallContent(NamedTuple):
    """A call's purpose ("" for none), script (None: the tenant's default) and variables."""

    purpose: str = ""
    script: str | None = None
    variables: Variables | None = None


NO_CONTENT = CallContent()


def checked_purpose(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not _PURPOSE.fullmatch(value.strip()):
        raise ValueError(
            '"purpose" must be a short name of letters, digits, spaces, ".", "_" or "-", '
            "e.g. annual-wellness"
        )
    if len(value.strip()) > MAX_PURPOSE:
        raise ValueError(f'"purpose" is longer than {MAX_PURPOSE} characters')
    return value.strip()


def checked_script(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError('"script" must be non-empty text')
    if len(value) > MAX_SCRIPT:
        raise ValueError(f'"script" is longer than {MAX_SCRIPT} characters')
    return value


def checked_variables(value: Any) -> Variables | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError('"variables" must be an object of names to strings or numbers')
    if len(value) > MAX_VARIABLES:
        raise ValueError(f'"variables" has more than {MAX_VARIABLES} entries')
    for name, item in value.items():
        _check_variable(name, item)
    return value or None


def _check_variable(name: Any, value: Any) -> None:
    if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
        raise ValueError(
            f"variable name {str(name)[:40]!r} must be letters, digits and _ (at most 40), "
            "not starting with a digit"
        )
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'variable "{name}" must be a string or a number')
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'variable "{name}" must be a finite number')
    if isinstance(value, str) and len(value) > MAX_VARIABLE_VALUE:
        raise ValueError(f'variable "{name}" is longer than {MAX_VARIABLE_VALUE} characters')


def checked_content(raw: Mapping[str, Any]) -> CallContent:
    """The content fields of an item (JSON object or CSV row), checked. Raises ValueError."""
    return CallContent(
        checked_purpose(raw.get("purpose")),
        checked_script(raw.get("script")),
        checked_variables(raw.get("variables")),
    )


def missing_variables(script: str, variables: Mapping[str, Any] | None) -> list[str]:
    """Placeholders of the script that neither the variables nor the built-ins fill."""
    given = BUILT_IN | set(variables or ())
    return sorted({name for name in _PLACEHOLDER.findall(script) if name not in given})


def script_for(content: CallContent, defaults: Mapping[str, str]) -> str | None:
    """The script a call says: its own, else the tenant's default for its purpose."""
    return content.script or defaults.get(content.purpose)


def script_problem(content: CallContent, defaults: Mapping[str, str]) -> str | None:
    """Why the call's script cannot be said with its variables, if it cannot."""
    script = script_for(content, defaults)
    missing = [] if script is None else missing_variables(script, content.variables)
    if not missing:
        return None
    names = ", ".join("{{" + name + "}}" for name in missing)
    whose = "the script" if content.script else f'the default script for "{content.purpose}"'
    return f"{whose} uses {names} but the item has no such variable"


def render(script: str, variables: Mapping[str, Any] | None, *, name: str) -> str:
    """The script with each {{variable}} replaced; the patient's name is {{name}}."""
    values = {"name": name, **(variables or {})}

    def fill(match: re.Match[str]) -> str:
        return _text(values.get(match.group(1), ""))

    return _PLACEHOLDER.sub(fill, script)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
