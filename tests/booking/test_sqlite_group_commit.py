"""SQLite's holds written in groups (booking/sqlite_hold.py): every hold queued for the writer
goes in one transaction, each under a savepoint of its own, and is answered only after that
transaction's COMMIT. A group is made here for real: another connection holds SQLite's
write lock while a first hold waits for it on the writer, and the requests sent meanwhile
queue behind that hold; when the lock is let go they are written as one group."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, closing, contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from caretime.booking import sqlite_hold
from caretime.booking.holding import EXPIRE_HOLDS
from caretime.booking.models import Appointment
from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.pooled import DriverError
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider
from tests.conftest import Database

DAY = "2026-03-04"  # the clock starts at 2026-03-02T15:00Z: beyond the 24 h notice


def _slot(n: int) -> str:
    return f"{DAY}T{n // 4:02d}:{n % 4 * 15:02d}:00Z"


@pytest.fixture
async def place(client: httpx.AsyncClient, database: Database) -> None:
    """A provider free all day, made known to this process by a first hold."""
    if database.kind != "sqlite":
        pytest.skip("holds are grouped on SQLite only")
    await make_provider(client, tz="UTC")
    await make_availability(client, windows={"date": DAY, "start": "00:00", "end": "24:00"})
    assert (await _reserve(client, 95, "patient-first")).status_code == 201


async def _reserve(
    client: httpx.AsyncClient, slot: int, client_id: str, key: str | None = None
) -> httpx.Response:
    body = {"provider_id": "dr-jekyll", "slot_start": _slot(slot), "client_id": client_id}
    headers = {"Idempotency-Key": key} if key else None
    return await client.post("/reservations", json=body, headers=headers)


def _connect(database: Database) -> sqlite3.Connection:
    """A connection of its own to the test's database file, as another process's."""
    return sqlite3.connect(make_url(database.url).database or "", isolation_level=None)


@contextmanager
def _write_lock(database: Database) -> Iterator[None]:
    """SQLite's write lock, held by another connection until the block ends."""
    with closing(_connect(database)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


async def _until(condition: Any) -> None:
    """Wait until `condition()` is true, looking every millisecond (at most 10 s: then the
    writer never got there); a poll, not a delay the test's outcome depends on."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the writer never got there")


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of holds in each transaction the writer runs from here on."""
    sizes: list[int] = []
    run = sqlite_hold._run

    def counted(connection: sqlite3.Connection, holds: list[sqlite_hold.Hold]) -> Any:
        sizes.append(len(holds))
        return run(connection, holds)

    monkeypatch.setattr(sqlite_hold, "_run", counted)
    return sizes


@asynccontextmanager
async def _one_group(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, count: int
) -> AsyncIterator[None]:
    """The `count` requests the block starts are written as one group: a first hold holds
    the writer (waiting for the lock held elsewhere) until all `count` are queued."""
    writer = sqlite_hold._writer(runtime.engine)
    with _write_lock(database):
        first = asyncio.create_task(_reserve(client, 94, "patient-plug"))
        await _until(lambda: writer.draining is not None and not writer.waiting)
        yield
        await _until(lambda: len(writer.waiting) == count)
    assert (await first).status_code == 201


async def _in_one_group(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, asks: list[tuple[int, str]]
) -> list[httpx.Response]:
    """The answers to reservations of these (slot, client id) pairs, written as one group."""
    async with _one_group(client, runtime, database, len(asks)):
        asked = [asyncio.create_task(_reserve(client, slot, who)) for slot, who in asks]
    return [await request for request in asked]


async def _held(runtime: Runtime, client_id: str) -> int:
    async with transaction(runtime.sessions) as session:
        query = select(func.count()).where(Appointment.client_id == client_id)
        return int((await session.execute(query)).scalar_one())


@pytest.mark.usefixtures("place")
async def test_a_group_holds_one_of_two_overlapping_holds_and_all_the_others(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, groups: list[int]
) -> None:
    slots = [10, 11, 12, 11, 13, 14]  # the second and the fourth overlap
    asks = [(slot, f"patient-{n}") for n, slot in enumerate(slots)]
    answers = await _in_one_group(client, runtime, database, asks)
    assert [answer.status_code for answer in answers] == [201, 201, 201, 409, 201, 201]
    assert answers[3].json()["type"] == "urn:caretime:problem:slot-taken"
    held = [await _held(runtime, f"patient-{n}") for n in range(len(slots))]
    assert held == [1, 1, 1, 0, 1, 1]
    assert groups[:2] == [1, len(slots)]  # the plug's, then all six in one transaction


@pytest.mark.usefixtures("place")
async def test_a_key_repeated_in_a_group_is_answered_with_its_first_hold(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, groups: list[int]
) -> None:
    async with _one_group(client, runtime, database, 3):
        asked = [
            asyncio.create_task(_reserve(client, 20, "patient-1", key="retry-1")),
            asyncio.create_task(_reserve(client, 21, "patient-2")),
            asyncio.create_task(_reserve(client, 20, "patient-1", key="retry-1")),
        ]
    first, other, again = [await request for request in asked]
    assert (first.status_code, other.status_code, again.status_code) == (201, 201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert await _held(runtime, "patient-1") == 1
    assert groups[:2] == [1, 3]  # then the repeat's read afresh, after the group


@pytest.mark.usefixtures("place")
async def test_holds_of_one_group_share_their_minute_s_sweep_job(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, groups: list[int]
) -> None:
    asks = [(70 + n, f"patient-{n}") for n in range(4)]
    answers = await _in_one_group(client, runtime, database, asks)
    assert [answer.status_code for answer in answers] == [201] * 4
    assert groups == [1, 4]
    async with transaction(runtime.sessions) as session:
        deadlines = select(Appointment.hold_expires_at).where(Appointment.status == "held")
        minutes = {int(due.timestamp()) // 60 for due in (await session.scalars(deadlines))}
        sweeps = select(Job.dedupe_key).where(Job.kind == EXPIRE_HOLDS, Job.status == "queued")
        keys = list(await session.scalars(sweeps))
    assert len(keys) == len(minutes)  # one job for every minute of a held deadline


@pytest.fixture
def scratch(database: Database) -> Iterator[sqlite3.Connection]:
    """A table of numbers, and a parent table whose deferred foreign key SQLite checks at
    COMMIT, for holds written straight to the writer (`_scratch_hold`)."""
    if database.kind != "sqlite":
        pytest.skip("holds are grouped on SQLite only")
    other = _connect(database)
    other.executescript("""
        CREATE TABLE scratch_parent (id INTEGER PRIMARY KEY);
        CREATE TABLE scratch (n INTEGER REFERENCES scratch_parent (id)
                              DEFERRABLE INITIALLY DEFERRED);
    """)
    other.executemany("INSERT INTO scratch_parent VALUES (?)", [(1,), (2,), (3,)])
    with closing(other):
        yield other


def _scratch_hold(n: int) -> sqlite_hold.Hold:
    """A "hold" that writes `n` twice and no sweep job (its three statements' shapes)."""
    insert = "INSERT INTO scratch (n) VALUES (:n) RETURNING n"
    return sqlite_hold.Hold(None, [(insert, {"n": n}), (insert, {"n": n}), ("SELECT NULL", {})])


async def _written_together(runtime: Runtime, database: Database, numbers: list[int]) -> list[Any]:
    """Each scratch hold's outcome (or error), all queued before the writer takes them."""
    writer = sqlite_hold._writer(runtime.engine)
    with _write_lock(database):
        asked = [
            asyncio.create_task(writer.write(runtime.engine, _scratch_hold(n))) for n in numbers
        ]
        await _until(lambda: writer.draining is not None and not writer.waiting)
    return await asyncio.gather(*asked, return_exceptions=True)


async def test_one_hold_s_error_outside_sqlite_is_its_own(
    runtime: Runtime, database: Database, scratch: sqlite3.Connection, groups: list[int]
) -> None:
    """A value sqlite3 cannot bind (an integer past 64 bits) fails its own hold, not the
    group's: the others are written."""
    first, failed, last = await _written_together(runtime, database, [1, 2**64, 3])
    assert groups == [3]
    assert (first, last) == ((True, None), (True, None))
    assert isinstance(failed, DriverError)
    assert "OverflowError" in str(failed)
    written = scratch.execute("SELECT n FROM scratch ORDER BY n").fetchall()
    assert written == [(1,), (1,), (3,), (3,)]


async def test_each_request_of_a_failed_group_raises_its_own_error(
    runtime: Runtime, database: Database, scratch: sqlite3.Connection, groups: list[int]
) -> None:
    """4 has no parent: the COMMIT fails, and with it every hold of the group."""
    answers = await _written_together(runtime, database, [1, 4, 3])
    assert groups == [3]
    assert all(isinstance(answer, sqlite_hold.GroupNotWritten) for answer in answers)
    assert len({id(answer) for answer in answers}) == 3  # each its own traceback
    assert len({id(answer.__cause__) for answer in answers}) == 1  # one error behind them
    assert scratch.execute("SELECT count(*) FROM scratch").fetchone() == (0,)


async def test_a_writer_cancelled_before_it_began_is_started_again(
    runtime: Runtime, scratch: sqlite3.Connection
) -> None:
    writer = sqlite_hold._writer(runtime.engine)
    first = asyncio.create_task(writer.write(runtime.engine, _scratch_hold(1)))
    await asyncio.sleep(0)  # `first` queues its hold and makes the writer's task, not yet run
    assert writer.draining is not None
    writer.draining.cancel()  # before its first step: its own clean-up never runs
    await asyncio.sleep(0)
    cancelled = writer.draining
    assert cancelled.done()
    second = asyncio.create_task(writer.write(runtime.engine, _scratch_hold(2)))
    await asyncio.sleep(0)
    assert writer.draining is not cancelled  # else both would wait for ever
    assert await second == (True, None)
    assert await first == (True, None)  # taken by the writer started again
    assert scratch.execute("SELECT n FROM scratch ORDER BY n").fetchall() == [
        (1,),
        (1,),
        (2,),
        (2,),
    ]


@contextmanager
def _schema_while(database: Database, make: str, unmake: str) -> Iterator[None]:
    """`make` run by another connection for the block, `unmake` after it."""
    with closing(_connect(database)) as other:
        other.executescript(make)
        try:
            yield
        finally:
            other.executescript(unmake)


def _commit_refused_for(database: Database, client_id: str) -> AbstractContextManager[None]:
    """A hold for `client_id` makes its transaction's COMMIT fail: its insert leaves a row
    whose deferred foreign key has no parent, which SQLite checks at COMMIT only."""
    make = f"""
        CREATE TABLE poison_parent (id TEXT PRIMARY KEY);
        CREATE TABLE poison (parent TEXT REFERENCES poison_parent (id)
                             DEFERRABLE INITIALLY DEFERRED);
        CREATE TRIGGER poison AFTER INSERT ON appointments
        WHEN NEW.client_id = '{client_id}'
        BEGIN INSERT INTO poison (parent) VALUES ('none'); END;
    """
    unmake = "DROP TRIGGER poison; DROP TABLE poison; DROP TABLE poison_parent;"
    return _schema_while(database, make, unmake)


@pytest.mark.usefixtures("place")
async def test_a_group_whose_commit_fails_answers_every_request_with_an_error(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, groups: list[int]
) -> None:
    clients = [f"patient-{n}" for n in range(5)]
    with _commit_refused_for(database, "patient-2"):
        answers = await _in_one_group(
            client, runtime, database, [(30 + n, who) for n, who in enumerate(clients)]
        )
    assert [answer.status_code for answer in answers] == [500] * len(clients)
    assert groups[:2] == [1, len(clients)]
    assert [await _held(runtime, client_id) for client_id in clients] == [0] * len(clients)
    assert (await _reserve(client, 30, "patient-after")).status_code == 201  # the writer goes on


def _event_refused_for(database: Database, client_id: str) -> AbstractContextManager[None]:
    """The `appointment.held` event of a hold for `client_id` is refused by a trigger."""
    make = f"""
        CREATE TRIGGER refuse_event BEFORE INSERT ON events
        WHEN NEW.subject_id IN (SELECT id FROM appointments WHERE client_id = '{client_id}')
        BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
    """
    return _schema_while(database, make, "DROP TRIGGER refuse_event")


@pytest.mark.usefixtures("place")
async def test_a_hold_failing_in_a_group_is_undone_alone(
    client: httpx.AsyncClient, runtime: Runtime, database: Database
) -> None:
    clients = [f"patient-{n}" for n in range(4)]
    with _event_refused_for(database, "patient-1"):
        answers = await _in_one_group(
            client, runtime, database, [(40 + n, who) for n, who in enumerate(clients)]
        )
    assert [answer.status_code for answer in answers] == [201, 500, 201, 201]
    assert [await _held(runtime, client_id) for client_id in clients] == [1, 0, 1, 1]


@pytest.mark.usefixtures("place")
async def test_a_request_cancelled_before_its_group_begins_is_left_out(
    client: httpx.AsyncClient, runtime: Runtime, database: Database
) -> None:
    async with _one_group(client, runtime, database, 2):
        kept = asyncio.create_task(_reserve(client, 60, "patient-kept"))
        gone = asyncio.create_task(_reserve(client, 61, "patient-gone"))
        await _until(lambda: len(sqlite_hold._writer(runtime.engine).waiting) == 2)
        gone.cancel()
    assert (await kept).status_code == 201
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (await _held(runtime, "patient-kept"), await _held(runtime, "patient-gone")) == (1, 0)


@pytest.mark.usefixtures("place")
async def test_many_concurrent_holds_of_one_slot_hold_it_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    answers = await asyncio.gather(*(_reserve(client, 50, f"patient-{n}") for n in range(64)))
    assert Counter(answer.status_code for answer in answers) == {201: 1, 409: 63}
    async with transaction(runtime.sessions) as session:
        query = select(func.count()).where(Appointment.status.in_(("held", "confirmed")))
        assert (await session.execute(query)).scalar_one() == 2  # and the first hold's
