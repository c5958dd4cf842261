"""A column's values as one text parameter for PostgreSQL (`caretime.bulk`'s module
docstring says why): strings joined by the ASCII unit separator when that reads them back
exactly, else a JSON array; shared values as scalars; the casts and the split that read them
back as the column takes them."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import JSON, Table, Text, literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

# Joins a column's strings into one text (see caretime.bulk's docstring). JSON text never holds
# it raw, nor do ids, numbers or zone names; a column with a value that does (a name could)
# is sent as a JSON array instead.
SEPARATOR = "\x1f"
_SEPARATOR_LITERAL = "E'\\x1f'"
SEPARATOR_SQL = literal_column(_SEPARATOR_LITERAL, Text)


class ColumnText(NamedTuple):
    """A column's values as one text: joined by SEPARATOR, or a JSON array."""

    text: str
    joined: bool


def splitter(session: AsyncSession) -> str:
    """How a joined column is split: string_to_table (PostgreSQL 14), or before it the array
    it makes, unnested."""
    version = session.get_bind().dialect.server_version_info or (14,)
    if version >= (14,):
        return f"string_to_table(${{}}::TEXT, {_SEPARATOR_LITERAL})"
    return f"unnest(string_to_array(${{}}::TEXT, {_SEPARATOR_LITERAL}))"


def array_text(values: Sequence[str]) -> str:
    """PostgreSQL's text form of a text[]: every element quoted, its backslashes and quotes
    escaped (so that NULL, braces, commas and spaces are just text)."""
    quoted = ['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values]
    return "{" + ",".join(quoted) + "}"


def column_text(table: Table, name: str, values: Sequence[Any]) -> ColumnText:
    """A column's values as one array whose elements read back (as text) as the column takes
    them: a document as its JSON text, an instant in ISO 8601 with its offset, a flag as
    true/false, None as null."""
    column_type = table.c[name].type
    if isinstance(column_type, JSON):
        return strings(_json_texts(values))
    python_type = _python_type(column_type)
    if python_type is datetime:
        for value in set(values):  # a batch's instants repeat: each distinct one checked once
            if value is not None:
                _refuse_naive(value)
    elif python_type not in (int, bool, str) or not _all_of_type(values, python_type):
        return strings([None if value is None else _str(value) for value in values])
    if python_type is str:
        return strings(values)
    return ColumnText(_json_array(values), joined=False)


def strings(values: Sequence[str | None]) -> ColumnText:
    """Strings joined by SEPARATOR when that reads them back exactly: no None, no separator
    in a value, and not one empty string (an empty text splits into no rows at all)."""
    if None not in values:
        text = SEPARATOR.join(values)  # type: ignore[arg-type]
        if text and text.count(SEPARATOR) == len(values) - 1:
            return ColumnText(text, joined=True)
    return ColumnText(_json_array(values), joined=False)


def _all_of_type(values: Sequence[Any], kind: type) -> bool:
    # orjson writes these as str() would; anything else (a float's NaN becomes null) as text.
    return set(map(type, values)) <= {kind, type(None)}


def _json_texts(values: Sequence[Any]) -> list[str | None]:
    """Each document's JSON text, each distinct object encoded once: a batch's rows share a
    few (its zone lists: 10,000 rows, a handful of tuples)."""
    by_object = {id(value): value for value in values}
    texts = {key: json_text(value) for key, value in by_object.items()}
    return [texts[id(value)] for value in values]


def _json_array(values: Sequence[Any]) -> str:
    return orjson.dumps(values).decode()


def scalar(table: Table, name: str, value: Any) -> Any:
    # asyncpg takes JSON documents as text; the column's type decorators do not run here.
    if isinstance(table.c[name].type, JSON):
        return json_text(value)
    if isinstance(value, datetime):
        _refuse_naive(value)
    return value


def _python_type(column_type: Any) -> type:
    # A TypeDecorator (UTCDateTime) reports `object`; the type it decorates knows better.
    python_type: type = getattr(column_type, "impl", column_type).python_type
    return python_type


def _str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _refuse_naive(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("naive datetime written to the database")


def json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):  # immutable, and in a batch often the same few (time zones)
        with contextlib.suppress(TypeError):  # unless it holds something unhashable
            return _json_tuple(value)
    return _encode_json(value)


@functools.lru_cache(maxsize=1024)
def _json_tuple(value: tuple[Any, ...]) -> str:
    return _encode_json(value)


_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def cast_from_text(table: Table, name: str) -> str:
    # Strings stay text: the INSERT's own assignment to varchar(n) then refuses an over-long
    # value, where an explicit ::varchar(n) cast would silently cut it.
    column_type = table.c[name].type
    if isinstance(column_type, JSON):
        return "::JSONB"
    return "" if _python_type(column_type) is str else f"::{_compiled(column_type)}"


def scalar_type(table: Table, name: str) -> str:
    """The type a shared value is sent as: its column's; strings as text, JSON as JSONB."""
    column_type = table.c[name].type
    if isinstance(column_type, JSON):
        # Typed as JSONB, the value is parsed once, as the statement is bound; a text cast to
        # JSONB would be parsed again for every row once PostgreSQL plans the prepared
        # statement generically (from its sixth run on a connection).
        return "JSONB"
    return "TEXT" if _python_type(column_type) is str else _compiled(column_type)


def _compiled(column_type: Any) -> str:
    return str(column_type.compile(dialect=_POSTGRESQL))


_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]
