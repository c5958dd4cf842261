"""A batch's contacts: the screening finds which numbers have a contact row, and on
PostgreSQL the others are written by a plain INSERT, with ON CONFLICT kept for a contact
that exists after all. Each number still gets one contact, its first name kept."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from caretime.db import transaction
from caretime.outreach.models import Contact, contact_id_for
from caretime.outreach.repository import ContactRepository
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from tests.conftest import Database
from tests.outreach.support import make_items, use_small_chunks

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few items (3, then 4): later chunks are screened while earlier ones are
    written, on PostgreSQL on a connection that does not see this batch's own rows."""
    use_small_chunks(monkeypatch)


@pytest.fixture
def contact_inserts(runtime: Runtime) -> Iterator[list[str]]:
    """Each INSERT INTO contacts sent, as 'plain' or 'on conflict'."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO contacts"):
            sent.append("on conflict" if "ON CONFLICT" in statement else "plain")

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", note)
    yield sent
    event.remove(runtime.engine.sync_engine, "before_cursor_execute", note)


async def _contacts(runtime: Runtime) -> dict[str, str]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(Contact.phone_e164, Contact.name))
        return dict(rows.all())


async def _cancel_all(client: httpx.AsyncClient, answers: list[dict[str, Any]]) -> None:
    for answer in answers:
        response = await client.delete(f"/calls/{answer['scheduled_task_id']}")
        assert response.status_code in (200, 204), response.text


async def test_known_and_new_numbers_each_get_one_contact_their_first_name_kept(
    client: httpx.AsyncClient, runtime: Runtime, database: Database, contact_inserts: list[str]
) -> None:
    """A batch of ten numbers called before (their calls cancelled, so not live) and ten new
    ones, across six chunks: every item scheduled, one contact per number, the known ones
    untouched. On PostgreSQL every chunk's new contacts go by the plain INSERT."""
    first = make_items(count=10, exchange=558)
    earlier = await client.post("/schedule", json=first)
    await _cancel_all(client, earlier.json())
    later = [{**item, "name": f"Renamed {i}"} for i, item in enumerate(first)]
    items = [
        x for pair in zip(later, make_items(count=10, exchange=559), strict=True) for x in pair
    ]
    contact_inserts.clear()
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    assert {a["status"] for a in response.json()} == {"scheduled"}
    contacts = await _contacts(runtime)
    assert len(contacts) == 20
    assert sorted(n for n in contacts.values() if not n.startswith("Patient")) == []
    if database.kind == "postgres":
        assert contact_inserts == ["plain"] * 6
    else:
        assert set(contact_inserts) == {"on conflict"}


@pytest.mark.parametrize("again_at", [2, 6], ids=["same chunk", "later chunk"])
async def test_a_number_repeated_in_a_batch_gets_one_contact_without_a_fallback(
    client: httpx.AsyncClient,
    runtime: Runtime,
    database: Database,
    contact_inserts: list[str],
    again_at: int,
) -> None:
    """A number in the first chunk and again, allowed as a duplicate, in the same chunk or a
    later one (whose screening, on PostgreSQL on a connection that does not see the first
    chunk's uncommitted contact, takes it for new): the contact is written once, by the
    first chunk, and known to the request from then on, so no chunk's plain INSERT meets
    it: both calls, one contact, its first name."""
    items: list[dict[str, Any]] = make_items(count=8, exchange=560)
    items[again_at] = {**items[1], "name": "Twin of item 1", "allow_duplicate": True}
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert {a["status"] for a in answers} == {"scheduled"}
    assert answers[again_at]["scheduled_task_id"] != answers[1]["scheduled_task_id"]
    contacts = await _contacts(runtime)
    assert len(contacts) == 7
    assert contacts[answers[1]["phone_e164"]] == "Patient 1"
    if database.kind == "postgres":  # chunks of 3, 4 and 1
        assert contact_inserts == ["plain"] * 3


@pytest.mark.postgres_only
async def test_a_contact_written_since_the_screening_is_skipped_not_refused(
    runtime: Runtime, database: Database, contact_inserts: list[str]
) -> None:
    """A contact the screening did not find (written since, by a concurrent request) and a
    new one: the plain INSERT is refused by the primary key, and the fallback writes the
    new one and leaves the other as it was."""
    async with transaction(runtime.sessions) as session:
        tenant_id = (await tenancy.create_tenant(session, "contacts", now=NOW)).id
        written = ContactRepository(session, tenant_id)
        await written.insert_missing(
            _contact_columns(tenant_id, ["+12125550100"], "First"), now=NOW
        )
    contact_inserts.clear()
    async with transaction(runtime.sessions) as session:
        contacts = ContactRepository(session, tenant_id)
        both = _contact_columns(tenant_id, ["+12125550100", "+12125550101"], "Second")
        await contacts.insert_missing(both, now=NOW, known=set())
    assert await _contacts(runtime) == {"+12125550100": "First", "+12125550101": "Second"}
    assert contact_inserts == ["plain", "on conflict"]  # refused, then the fallback


def _contact_columns(tenant_id: str, numbers: list[str], name: str) -> dict[str, list[Any]]:
    return {
        "id": [contact_id_for(tenant_id, number) for number in numbers],
        "name": [name] * len(numbers),
        "phone_e164": numbers,
        "zones": [["America/New_York"]] * len(numbers),
    }


@pytest.mark.postgres_only
async def test_a_contact_refused_for_another_reason_is_an_error(runtime: Runtime) -> None:
    """Only a contact that exists falls back to ON CONFLICT: a row refused otherwise (here
    a tenant that does not exist) fails the write."""
    async with runtime.sessions() as session:
        contacts = ContactRepository(session, "no-such-tenant")
        columns = _contact_columns("no-such-tenant", ["+12125550102"], "Nobody")
        with pytest.raises(IntegrityError, match="foreign key"):
            await contacts.insert_missing(columns, now=NOW, known=set())
