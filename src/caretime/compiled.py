"""A SQLAlchemy statement compiled once and sent by a driver itself (`pg_direct` for asyncpg,
`sqlite_driver` and `booking.sqlite_hold` for sqlite3): what SQLAlchemy would otherwise do
on each execution, done at compile time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from sqlalchemy.engine import Compiled, Dialect


class Conversions(NamedTuple):
    constants: Mapping[str, Any]  # values the statement carries (literals), converted
    convert: Mapping[str, Callable[[Any], Any]]  # a parameter's conversion by its type

    def bound(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` and the statement's constants by name, each converted as SQLAlchemy
        would convert it (the constants once, when compiled)."""
        bound = dict(self.constants)
        convert = self.convert
        for name, value in params.items():
            bound[name] = convert[name](value) if name in convert else value
        return bound


def conversions(compiled: Compiled, dialect: Dialect) -> Conversions:
    """The values `compiled` carries itself, and each parameter's conversion by its type as
    SQLAlchemy would apply it."""
    binds = compiled.binds  # type: ignore[attr-defined]
    constants = {name: bind.value for name, bind in binds.items() if not bind.required}
    convert = {}
    for name, bind in binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            convert[name] = processor
    converted = {
        name: convert[name](value) if name in convert else value
        for name, value in constants.items()
    }
    return Conversions(converted, convert)
