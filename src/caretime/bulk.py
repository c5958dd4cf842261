"""Many rows into one table in one statement: PostgreSQL unnests one array per column, other
databases take an executemany in chunks.

Batches of thousands (a schedule, a fan-out, a page of jobs) are written this way. On
PostgreSQL a single `INSERT ... SELECT FROM unnest(...)` is several times faster than
executemany: the rows cross the wire as a dozen arrays and the server plans one statement.
Values the rows share (a tenant, a status, a timestamp) are sent once, as scalars, not once
per row.

Every column travels as one text parameter. A column of strings (or documents, as their JSON
text) holding no NULL and no ASCII unit separator (U+001F) is its values joined by that
separator, which the server splits with `string_to_table`: a third of the server's cost of
reading the same column as a JSON array, which has escapes to undo (a 10,000-call batch's
calls, contacts and events: ~30 ms of PostgreSQL's CPU). Every other column is one JSON
array of its rows' values (encoded by orjson), read back with `json_array_elements_text`;
the server casts each column to its type. Not typed arrays: asyncpg knows text[] by heart
but looks up every other array type (varchar[], timestamptz[], bool[]...) with a catalog
query on each new connection, 30-90 ms apiece here, which a burst of batch jobs on fresh pool
connections paid over and over. Not text[] either: asyncpg encodes an array element by
element (an abstract-class `isinstance` per element), 70-90 ms for a batch of 10,000 calls,
where joining or orjson writes the same column as one string in about a millisecond.

Reads of hundreds of rows by key go through `where_one_of`, for the same reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Select,
    Table,
    Text,
    TextClause,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from caretime import bulk_text
from caretime.db import is_postgres

# Rows per executemany chunk off PostgreSQL: amortises round trips, stays under SQLite's
# bind-parameter limit with ~20 columns.
CHUNK = 1000
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class Documents:
    """The values of a JSON column whose documents share one shape (a batch's event
    snapshots): `shape` is the document, its keys in order, with the values every row shares;
    the keys in `each` take the row's own value instead (a string or None), one per row.

    On PostgreSQL the server builds the documents (the shared part once, as one JSONB, joined
    with `jsonb_build_object` of the row's own strings): no document is built or encoded in
    Python, and what crosses the wire is a few text arrays, not thousands of documents."""

    shape: Mapping[str, Any]
    each: Mapping[str, Sequence[str | None]]

    def __len__(self) -> int:
        return len(next(iter(self.each.values()))) if self.each else 0

    def documents(self) -> list[dict[str, Any]]:
        """Each row's document, built in Python (other databases), keys in `shape`'s order."""
        keys = list(self.each)
        rows = zip(*self.each.values(), strict=True)
        return [{**self.shape, **dict(zip(keys, own, strict=True))} for own in rows]

    def split(self) -> tuple[dict[str, Any], dict[str, Sequence[str | None]]]:
        """(what every row shares, what differs per row): a key whose value is the same in
        every row moves to the shared part, as insert_rows hoists uniform columns."""
        shared = {key: value for key, value in self.shape.items() if key not in self.each}
        own: dict[str, Sequence[str | None]] = {}
        for key, values in self.each.items():
            if _all_the_same(values, json=False):
                shared[key] = values[0]
            else:
                own[key] = values
        return shared, own


Column = Sequence[Any] | Documents


@dataclass(frozen=True)
class SkipConflicts:
    """Rows that would violate the unique index on `columns` (partial: `where`) are skipped."""

    columns: tuple[str, ...]
    where: TextClause | None = None

    def postgresql(self) -> str:
        target = f"({', '.join(self.columns)})"
        if self.where is not None:
            target += f" WHERE {self.where.text}"
        return f" ON CONFLICT {target} DO NOTHING"


async def insert_rows(
    session: AsyncSession,
    model: type[Any],
    columns: Mapping[str, Column],
    *,
    shared: Mapping[str, Any] | None = None,
    skip: SkipConflicts | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert one row of `model`'s table per position of the equally long `columns`
    (name → values, or the `Documents` of a JSON column); every row also gets the `shared`
    values. Returns the `returning` column of the rows inserted. The first column must be
    plain values."""
    table, shared = _table(model), shared or {}
    if not columns or not len(next(iter(columns.values()))):
        return []
    if not is_postgres(session):
        plain = {n: v.documents() if isinstance(v, Documents) else v for n, v in columns.items()}
        return await _executemany_insert(session, table, plain, shared, skip, returning)
    split = bulk_text.splitter(session)
    prepared = prepared_insert(split, model, columns, shared=shared, skip=skip, returning=returning)
    return await run_prepared(session, prepared)


@dataclass(frozen=True)
class PreparedInsert:
    """`insert_rows`' statement for PostgreSQL, built without a session: its text and its
    parameters, pure data. A large write builds the next statement in a worker thread while
    the connection runs the one before (outreach.writing), instead of leaving PostgreSQL
    idle while Python turns 10,000 rows into text."""

    sql: str
    parameters: _Parameters


def prepared_insert(
    split: str,
    model: type[Any],
    columns: Mapping[str, Column],
    *,
    shared: Mapping[str, Any] | None = None,
    skip: SkipConflicts | None = None,
    returning: str | None = None,
) -> PreparedInsert:
    """`insert_rows`' PostgreSQL statement for at least one row; `split`: the session's
    `bulk_text.splitter`."""
    table = _table(model)
    built = {name: v.split() for name, v in columns.items() if isinstance(v, Documents)}
    arrays = {name: v for name, v in columns.items() if not isinstance(v, Documents)}
    arrays, shared = _hoist_uniform(table, arrays, shared or {}, keep=next(iter(arrays)))
    parameters = _parameters(table, arrays, shared)
    # The documents' own strings are arrays too: after the columns', before every scalar.
    own = {
        name: _own_arrays(documents, arrays, parameters) for name, (_, documents) in built.items()
    }
    values = _unnested_values(table, arrays, shared, first_scalar=len(parameters.arrays) + 1)
    for name, (common, _) in built.items():
        values[name] = _built_documents(common, own[name], parameters)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(values)}) SELECT {', '.join(values.values())} "
        f"FROM {_unnest(split, parameters.arrays)}"
    )
    if skip is not None:
        sql += skip.postgresql()
    if returning is not None:
        sql += f" RETURNING {returning}"
    return PreparedInsert(sql, parameters)


async def run_prepared(session: AsyncSession, prepared: PreparedInsert) -> list[Any]:
    """Run a prepared insert in the session's transaction; the `returning` column's values."""
    return [row[0] for row in await _execute(session, prepared.sql, prepared.parameters)]


async def update_rows(
    session: AsyncSession,
    model: type[Any],
    key: str,
    columns: Mapping[str, Sequence[Any]],
    *,
    shared: Mapping[str, Any] | None = None,
) -> None:
    """For each position of `columns[key]`, set that row's other `columns` to the values at
    the same position, and the `shared` values: one statement however many rows."""
    table, shared = _table(model), shared or {}
    if not len(columns[key]):
        return
    if not is_postgres(session):
        await _executemany_update(session, table, key, columns, shared)
        return
    columns, shared = _hoist_uniform(table, columns, shared, keep=key)
    values = _unnested_values(table, columns, shared)
    del values[key]
    # Compared as the key's own type (text as varchar), so that the key's index serves the join.
    matched = f"u{list(columns).index(key)}{bulk_text.cast_from_text(table, key) or '::VARCHAR'}"
    assignments = ", ".join(f"{name} = {value}" for name, value in values.items())
    parameters = _parameters(table, columns, shared)
    sql = (
        f"UPDATE {table.name} SET {assignments} "
        f"FROM {_unnest(bulk_text.splitter(session), parameters.arrays)} "
        f"WHERE {table.name}.{key} = {matched}"
    )
    await _execute(session, sql, parameters)


def where_one_of(
    session: AsyncSession,
    statement: Select[*Ts],
    column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
    values: Sequence[str],
) -> Select[*Ts]:
    """`statement` limited to rows whose `column` (a string key) is one of `values`.

    On PostgreSQL that is `column = ANY(CAST($n AS TEXT[]))`: one parameter and one prepared
    statement whatever the number of values. For a unique column the planner then knows the
    match is at most len(values) rows and probes its index (it reads the array's size when it
    estimates, cast or not). (An IN list, or a join with the unnested values, leaves the
    choice to the estimate of the other conditions: with statistics that say few messages are
    `queued`, the planner scanned every queued-looking row of the tenant against all 200
    values, 360 ms per batch.) The array is sent as one string: asyncpg encoded a text[]
    element by element, 20 ms for a batch's 10,000 contact ids. That string is the keys
    joined by SEPARATOR when they hold none (split by `string_to_array`: a quarter of the
    server's cost of reading an array's text, 1.5 against 6 ms for 10,000 keys), else the
    array's text. Other databases get `IN`."""
    if not is_postgres(session):
        return statement.where(column.in_(values))
    return statement.where(column == any_(_text_array(values)))


def probe_each(
    session: AsyncSession,
    statement: Select[*Ts],
    column: InstrumentedAttribute[str],
    values: Sequence[str],
) -> Select[*Ts]:
    """`statement`'s rows whose `column` is one of `values`, found by one probe of an index
    on `column` per value, whatever the planner estimates. For a key that few rows hold
    (a contact's live call) among thousands of values: `where_one_of`'s `= ANY` leaves the
    choice of index to the estimates of the other conditions, and with some statistics (a
    tenant's table growing by a batch at a time, stale or just analysed) PostgreSQL scanned
    every live call of the table against the values, 29-37 ms for 3,500 values with 80,000
    live calls and growing with them, where a probe per value costs ~3 µs.

    On PostgreSQL the values are unnested and `statement`, limited to the one value, runs
    as a LATERAL subquery behind `OFFSET 0`, which PostgreSQL never flattens into a join:
    it runs once per value, with the value as a constant. Other databases get `IN`."""
    if not is_postgres(session):
        return statement.where(column.in_(values))
    keys = unnested_keys(values)
    probed = statement.where(column == keys.c.key).offset(0).lateral()
    return select(*probed.c).select_from(keys).join(probed, true())


def unnested_keys(values: Sequence[str]) -> Any:
    """`values` as the rows of a table `keys` with one column, `key`: one text parameter,
    split as `where_one_of` splits it."""
    return func.unnest(_text_array(values)).table_valued("key").render_derived(name="keys")


def _text_array(values: Sequence[str]) -> ColumnElement[Sequence[str]]:
    """`values` as a PostgreSQL text[] sent as one string: the keys joined by SEPARATOR when
    they hold none (split by `string_to_array`), else the array's text (see `where_one_of`)."""
    keys = bulk_text.strings(values)
    if keys.joined:
        return func.string_to_array(
            literal(keys.text, Text), bulk_text.SEPARATOR_SQL, type_=ARRAY(Text)
        )
    return cast(literal(bulk_text.array_text(values), Text), ARRAY(Text))


def _hoist_uniform(
    table: Table, columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any], *, keep: str
) -> tuple[dict[str, Sequence[Any]], dict[str, Any]]:
    """Columns with the same value in every row travel once, as a shared value (a hand-over's
    timestamps, provider and status; an event batch's source): fewer arrays to turn into
    text, send and unnest. `keep` stays an array, so that the rows are still counted."""
    arrays: dict[str, Sequence[Any]] = {}
    hoisted = dict(shared)
    for name, values in columns.items():
        if name != keep and _all_the_same(values, json=isinstance(table.c[name].type, JSON)):
            hoisted[name] = values[0]
        else:
            arrays[name] = values
    return arrays, hoisted


def _all_the_same(values: Sequence[Any], *, json: bool) -> bool:
    first = values[0]
    if json:  # documents that compare equal may still differ ({"n": 1} == {"n": True})
        return all(value is first for value in values)
    # Equal, and of one type (1 == True); counted and typed by C loops (a batch's columns of
    # 10,000 flags or purposes: a few times faster than a generator over them).
    return values.count(first) == len(values) and _of_one_type(values)


def _of_one_type(values: Sequence[Any]) -> bool:
    return len(set(map(type, values))) == 1


def _unnested_values(
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
    *,
    first_scalar: int | None = None,
) -> dict[str, str]:
    """Column name → its value in SQL: the unnested array element (u0, u1...) cast from
    text, then the shared values as parameters after the arrays' (from `first_scalar` when
    more arrays follow the columns')."""
    from_arrays = {
        name: f"u{i}{bulk_text.cast_from_text(table, name)}" for i, name in enumerate(columns)
    }
    first_scalar = first_scalar or len(columns) + 1
    from_scalars = {
        name: f"${i}::{bulk_text.scalar_type(table, name)}"
        for i, name in enumerate(shared, first_scalar)
    }
    return {**from_arrays, **from_scalars}


@dataclass
class _Parameters:
    """A statement's parameters: the columns ($1..., each one `bulk_text.ColumnText`) first,
    then the scalars."""

    arrays: list[bulk_text.ColumnText]
    scalars: list[Any]

    def add_array(self, values: Sequence[str | None]) -> str:
        """Appends a column of strings (before any scalar is numbered); returns its unnested
        column."""
        self.arrays.append(bulk_text.strings(values))
        return f"u{len(self.arrays) - 1}"

    def add_scalar(self, value: Any) -> str:
        self.scalars.append(value)
        return f"${len(self.arrays) + len(self.scalars)}"


def _parameters(
    table: Table, columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any]
) -> _Parameters:
    """Each column as one array, the shared values as scalars (in _unnested_values' order)."""
    return _Parameters(
        [bulk_text.column_text(table, name, values) for name, values in columns.items()],
        [bulk_text.scalar(table, name, value) for name, value in shared.items()],
    )


def _own_arrays(
    own: Mapping[str, Sequence[str | None]],
    columns: Mapping[str, Sequence[Any]],
    parameters: _Parameters,
) -> dict[str, str]:
    """Key → the unnested column holding each row's own value for it: a column of the row
    when it holds the same strings (an event's subject, which its snapshot names too), else
    an array of its own."""
    return {key: _same_column(values, columns) or parameters.add_array(values)
            for key, values in own.items()}  # fmt: skip


def _same_column(values: Sequence[str | None], columns: Mapping[str, Sequence[Any]]) -> str | None:
    for i, column in enumerate(columns.values()):
        if column == values and set(map(type, column)) == {str}:
            return f"u{i}"
    return None


def _built_documents(
    common: Mapping[str, Any], own: Mapping[str, str], parameters: _Parameters
) -> str:
    """The SQL that builds a row's document: the shared part as one JSONB parameter, joined
    (||) with an object of the row's own strings."""
    shared = f"{parameters.add_scalar(bulk_text.json_text(common))}::JSONB"
    if not own:
        return shared
    pairs = ", ".join(f"{_sql_string(key)}, {column}" for key, column in own.items())
    return f"({shared} || jsonb_build_object({pairs}))"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _execute(session: AsyncSession, sql: str, parameters: _Parameters) -> list[Any]:
    """Run in the session's transaction, through SQLAlchemy (its statement cache and its
    exceptions)."""
    connection = await session.connection()
    arrays = [array.text for array in parameters.arrays]
    result = await connection.exec_driver_sql(sql, (*arrays, *parameters.scalars))
    return list(result.all()) if result.returns_rows else []


def _unnest(split: str, arrays: Sequence[bulk_text.ColumnText]) -> str:
    """The first parameters (`arrays`, sent as text) as the rows of `u`, columns u0, u1... of
    text (a JSON null is NULL); zipped as unnest zips arrays. `split`: `bulk_text.splitter`."""
    columns = ", ".join(
        split.format(i) if array.joined else f"json_array_elements_text(${i}::TEXT::JSON)"
        for i, array in enumerate(arrays, 1)
    )
    return f"ROWS FROM ({columns}) AS u({', '.join(f'u{i}' for i in range(len(arrays)))})"


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


async def _executemany_update(
    session: AsyncSession,
    table: Table,
    key: str,
    columns: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
) -> None:
    # Bound names differ from the column names: SQLAlchemy reserves those for SET.
    statement = (
        update(table)
        .where(table.c[key] == bindparam(f"b_{key}"))
        .values({name: bindparam(f"b_{name}") for name in [*columns, *shared] if name != key})
    )
    rows = _row_dicts(columns, shared, prefix="b_")
    for start in range(0, len(rows), CHUNK):
        await session.execute(statement, rows[start : start + CHUNK])


async def _executemany_insert(
    session: AsyncSession,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
    skip: SkipConflicts | None,
    returning: str | None,
) -> list[Any]:
    rows = _row_dicts(columns, shared)
    statement: Any = insert(table)
    if skip is not None:
        statement = sqlite.insert(table).on_conflict_do_nothing(
            index_elements=list(skip.columns), index_where=skip.where
        )
    if returning is not None:
        statement = statement.returning(table.c[returning])
    returned: list[Any] = []
    for start in range(0, len(rows), CHUNK):
        result = await session.execute(statement, rows[start : start + CHUNK])
        if returning is not None:
            returned.extend(result.scalars().all())
    return returned


def _row_dicts(
    columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any], *, prefix: str = ""
) -> list[dict[str, Any]]:
    """The rows as executemany takes them: one dict each, names prefixed."""
    names = [prefix + name for name in columns]
    common = {prefix + name: value for name, value in shared.items()}
    return [
        {**dict(zip(names, row, strict=True)), **common}
        for row in zip(*columns.values(), strict=True)
    ]
