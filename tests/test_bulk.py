"""caretime.bulk: many rows in one statement, faithful to every column type, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, StatementError

from caretime.bulk import (
    Documents,
    SkipConflicts,
    insert_rows,
    probe_each,
    update_rows,
    where_one_of,
)
from caretime.bulk_text import SEPARATOR
from caretime.db import transaction
from caretime.dispatch.models import DEDUPE_PREDICATE, Job
from caretime.runtime import Runtime

LIVE_KEYS = SkipConflicts(("dedupe_key",), DEDUPE_PREDICATE)
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
# Text that a hand-made array literal would get wrong: quotes, braces, commas, NULL, unicode.
AWKWARD = ['a "quoted", {braced} value', "NULL", "back\\slash", "José — 🩺", ""]


def _jobs(count: int, **overrides: list[Any]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        "kind": [f"test.kind{i}" for i in range(count)],
        "payload": [{"n": i, "nested": {"list": [i, None]}} for i in range(count)],
        "run_at": [NOW + timedelta(seconds=i) for i in range(count)],
        "priority": list(range(count)),
        "dedupe_key": [f"key-{i}" for i in range(count)],
    }
    return {**columns, **overrides}


SHARED = {
    "status": "queued",
    "attempts": 0,
    "max_attempts": 5,
    "created_at": NOW,
    "updated_at": NOW,
}


async def _all_jobs(runtime: Runtime) -> list[Job]:
    async with transaction(runtime.sessions) as session:
        return list((await session.scalars(select(Job).order_by(Job.id))).all())


async def test_rows_come_back_as_written_and_shared_values_reach_every_row(
    runtime: Runtime,
) -> None:
    columns = _jobs(len(AWKWARD), kind=AWKWARD, dedupe_key=[None, *AWKWARD[1:]])
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, columns, shared=SHARED)
    jobs = await _all_jobs(runtime)
    assert [j.kind for j in jobs] == AWKWARD
    assert [j.dedupe_key for j in jobs] == [None, *AWKWARD[1:]]
    assert [j.payload for j in jobs] == columns["payload"]
    assert [j.run_at for j in jobs] == columns["run_at"]
    assert [j.priority for j in jobs] == columns["priority"]
    assert {(j.status, j.attempts, j.created_at) for j in jobs} == {("queued", 0, NOW)}


async def test_documents_of_one_shape_come_back_as_each_row_would_have_been_written(
    runtime: Runtime,
) -> None:
    # A key shared by every row, a key whose values differ (awkward text, None), a key whose
    # values are all the same (sent once), and nested shared values.
    shape = {"id": None, "n": 3, "own": None, "same": None, "nested": {"a": [1, None]}}
    each = {"id": AWKWARD, "own": [None, *AWKWARD[1:]], "same": ["x"] * len(AWKWARD)}
    documents = Documents(shape, each)
    columns = {**_jobs(len(AWKWARD)), "payload": documents}
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, columns, shared=SHARED)
    jobs = await _all_jobs(runtime)
    assert [j.payload for j in jobs] == documents.documents()
    assert jobs[1].payload == {"id": "NULL", "n": 3, "own": "NULL", "same": "x",
                               "nested": {"a": [1, None]}}  # fmt: skip
    assert jobs[0].payload["own"] is None


async def test_conflicting_rows_are_skipped_and_only_new_ids_returned(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as session:
        first = await insert_rows(
            session, Job, _jobs(2), shared=SHARED, skip=LIVE_KEYS, returning="id"
        )
    async with transaction(runtime.sessions) as session:
        second = await insert_rows(
            session, Job, _jobs(3), shared=SHARED, skip=LIVE_KEYS, returning="id"
        )
    assert len(first) == 2
    assert len(second) == 1
    jobs = await _all_jobs(runtime)
    assert [j.dedupe_key for j in jobs] == ["key-0", "key-1", "key-2"]
    assert [j.id for j in jobs] == [*first, *second]


async def test_an_update_sets_each_row_its_own_values_and_leaves_others_alone(
    runtime: Runtime,
) -> None:
    async with transaction(runtime.sessions) as session:
        ids = await insert_rows(session, Job, _jobs(3), shared=SHARED, returning="id")
    later = NOW + timedelta(hours=1)
    async with transaction(runtime.sessions) as session:
        await update_rows(
            session,
            Job,
            "id",
            {"id": [ids[2], ids[0]], "kind": ["third", AWKWARD[0]], "payload": [{}, {"x": [1]}]},
            shared={"updated_at": later},
        )
    jobs = await _all_jobs(runtime)
    assert [(j.kind, j.payload, j.updated_at) for j in jobs] == [
        (AWKWARD[0], {"x": [1]}, later),
        ("test.kind1", {"n": 1, "nested": {"list": [1, None]}}, NOW),
        ("third", {}, later),
    ]


async def test_a_naive_datetime_is_refused(runtime: Runtime) -> None:
    naive = [NOW.replace(tzinfo=None)]
    with pytest.raises((ValueError, StatementError)):
        async with transaction(runtime.sessions) as session:
            await insert_rows(session, Job, _jobs(1, run_at=naive), shared=SHARED)
    assert await _all_jobs(runtime) == []


@pytest.mark.postgres_only
async def test_an_over_long_text_is_refused_not_cut(runtime: Runtime) -> None:
    with pytest.raises(DBAPIError, match="too long"):
        async with transaction(runtime.sessions) as session:
            await insert_rows(session, Job, _jobs(1, kind=["k" * 101]), shared=SHARED)
    assert await _all_jobs(runtime) == []


async def test_columns_the_same_in_every_row_reach_every_row(runtime: Runtime) -> None:
    """Such columns travel once; what is written is the same as if each row carried them."""
    later = NOW + timedelta(hours=1)
    ones = [{"n": 1}, {"n": True}, {"n": 1.0}]  # equal in Python, three documents in JSON
    columns = _jobs(3, kind=["same"] * 3, priority=[7] * 3, payload=ones, run_at=[later] * 3)
    async with transaction(runtime.sessions) as session:
        ids = await insert_rows(session, Job, columns, shared=SHARED, returning="id")
    async with transaction(runtime.sessions) as session:
        await update_rows(
            session, Job, "id", {"id": ids, "status": ["done"] * 3, "attempts": [1, 1, 2]}
        )
    jobs = await _all_jobs(runtime)
    assert [(j.kind, j.priority, j.run_at, j.status) for j in jobs] == [
        ("same", 7, later, "done")
    ] * 3
    assert [j.attempts for j in jobs] == [1, 1, 2]
    assert [j.payload for j in jobs] == ones
    assert [type(j.payload["n"]) for j in jobs] == [int, bool, float]


async def test_where_one_of_keeps_the_rows_whose_key_is_listed(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, _jobs(5), shared=SHARED)
    wanted = ["key-1", "key-3", "key-9", AWKWARD[0]]
    async with transaction(runtime.sessions) as session:
        statement = where_one_of(session, select(Job.dedupe_key), Job.dedupe_key, wanted)
        found = (await session.scalars(statement.order_by(Job.dedupe_key))).all()
        none = where_one_of(session, select(Job.id), Job.dedupe_key, [])
        assert (await session.scalars(none)).all() == []
    assert found == ["key-1", "key-3"]


async def test_where_one_of_finds_every_awkward_key(runtime: Runtime) -> None:
    """The keys travel as one text (joined, or an array's): quotes, backslashes, braces,
    commas, the word NULL, spaces, unicode, the empty string and the separator each match
    themselves and nothing else."""
    keys = [*AWKWARD, "trailing space ", ' "', "\\", "{}", f"a{SEPARATOR}b", SEPARATOR]
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, _jobs(len(keys), dedupe_key=keys), shared=SHARED)
    async with transaction(runtime.sessions) as session:
        for key in keys:
            statement = where_one_of(session, select(Job.dedupe_key), Job.dedupe_key, [key])
            assert (await session.scalars(statement)).all() == [key]
        for some in (keys, keys[:-2]):  # with the separator in a key, and joined without
            statement = where_one_of(session, select(Job.dedupe_key), Job.dedupe_key, some)
            assert sorted((await session.scalars(statement)).all()) == sorted(some)


async def test_probe_each_finds_the_rows_of_every_key_and_only_theirs(runtime: Runtime) -> None:
    """One probe per key: every awkward key (the separator among them, which sends the keys
    as an array's text) finds its own rows, with the statement's other conditions kept."""
    keys = [*AWKWARD, "trailing space ", "{}", f"a{SEPARATOR}b", SEPARATOR]
    columns = _jobs(len(keys), kind=keys, dedupe_key=[None] * len(keys))
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, columns, shared=SHARED)
    queued = select(Job.kind, Job.priority).where(Job.priority > 0)
    async with transaction(runtime.sessions) as session:
        for some in (keys, keys[:-2], [keys[0], "no such kind"], []):
            rows = (await session.execute(probe_each(session, queued, Job.kind, some))).all()
            expected = {(kind, keys.index(kind)) for kind in some if kind in keys[1:]}
            assert set(rows) == expected


async def test_strings_holding_the_separator_or_one_empty_string_come_back_exactly(
    runtime: Runtime,
) -> None:
    """A column of strings travels joined by a separator unless that could not be read back:
    a value holding the separator, a NULL, or a lone empty string (which splits into no row)."""
    with_separator = [f"a{SEPARATOR}b", SEPARATOR, "plain"]
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, _jobs(3, kind=with_separator), shared=SHARED)
        await insert_rows(session, Job, _jobs(1, kind=["lone"], dedupe_key=[""]), shared=SHARED)
    jobs = await _all_jobs(runtime)
    assert [j.kind for j in jobs] == [*with_separator, "lone"]
    assert [j.dedupe_key for j in jobs] == ["key-0", "key-1", "key-2", ""]


async def test_a_document_key_holding_a_column_s_values_reads_them(runtime: Runtime) -> None:
    """A key whose values are a column's (an event's subject, named in its snapshot too) is
    sent once; each document still holds its own row's value."""
    keys = [f"key-{i}" for i in range(3)]
    documents = Documents({"key": None, "n": 1}, {"key": list(keys)})
    async with transaction(runtime.sessions) as session:
        await insert_rows(session, Job, {**_jobs(3), "payload": documents}, shared=SHARED)
    jobs = await _all_jobs(runtime)
    assert [j.payload for j in jobs] == [{"key": key, "n": 1} for key in keys]


async def test_a_shared_document_reaches_every_row_on_every_run_of_the_statement(
    runtime: Runtime,
) -> None:
    """PostgreSQL plans a prepared statement generically from its sixth run on a connection:
    the shared document is then a typed parameter, and is still written whole."""
    payload = {"nested": {"list": [1, None]}, "text": 'a "quoted" value'}
    for _ in range(8):
        async with transaction(runtime.sessions) as session:
            await insert_rows(
                session, Job, _jobs(2, payload=[payload, payload], dedupe_key=[None, None]),
                shared=SHARED,
            )  # fmt: skip
    assert [j.payload for j in await _all_jobs(runtime)] == [payload] * 16
