"""`caretime import shifts`: the legacy sample imports what it can and reports the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from caretime.cli import app as cli
from caretime.config import get_settings
from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.shifts.importer import import_document
from caretime.shifts.models import Caregiver, Shift
from caretime.tenancy.policy import ShiftPolicy
from tests.conftest import Database
from tests.shifts.support import default_tenant_id

SAMPLE = Path("/work/shared/data/shift-sample-data.json")
SAMPLE_DOCUMENT = {
    "caregivers": [
        {
            "id": "27e8d156-7fee-4f79-94d7-b45d306724d4",
            "name": "A",
            "role": "RN",
            "phone": "+15550001",
        },
        {
            "id": "c3d4e5f6-g7h8-9012-cdef-345678901234",
            "name": "B",
            "role": "LPN",
            "phone": "+15550003",
        },
        {"id": "ok-1", "name": "C", "roles": ["RN"], "phone": "+1 206 555 0100"},
    ],
    "shifts": [
        {
            "id": "b2c3d4e5-f6g7-8901-bcde-f23456789012",
            "organization_id": "672b5b2a-9a2a-4e55-b0b0-243e0fd4caf5",
            "role_required": "RN",
            "start_time": "2025-07-03T00:00:00Z",
            "end_time": "2025-07-03T08:00:00Z",
        },
        {
            "id": "future",
            "role_required": "LPN",
            "start_time": "2026-03-03T00:00:00Z",
            "end_time": "2026-03-03T08:00:00Z",
        },
        {"id": "broken", "role_required": "RN", "start_time": "tomorrow"},
    ],
}


async def _import(runtime: Runtime, document: object) -> list[tuple[str, str | None, str, str]]:
    tenant_id = await default_tenant_id(runtime)
    async with transaction(runtime.sessions) as session:
        reports = await import_document(
            session, tenant_id, document, policy=ShiftPolicy(), now=runtime.clock.now()
        )
    return [(r.kind, r.id, r.outcome, "; ".join(r.reasons + r.notes)) for r in reports]


@pytest.mark.usefixtures("app")
async def test_bad_records_are_reported_and_the_rest_imported(runtime: Runtime) -> None:
    reports = await _import(runtime, SAMPLE_DOCUMENT)
    outcomes = [(kind, id_, outcome) for kind, id_, outcome, _ in reports]
    assert outcomes == [
        ("caregiver", "27e8d156-7fee-4f79-94d7-b45d306724d4", "rejected"),
        ("caregiver", "c3d4e5f6-g7h8-9012-cdef-345678901234", "rejected"),
        ("caregiver", "ok-1", "imported"),
        ("shift", "b2c3d4e5-f6g7-8901-bcde-f23456789012", "imported"),
        ("shift", "future", "imported"),
        ("shift", "broken", "rejected"),
    ]
    why = {id_: reason for _, id_, _, reason in reports}
    assert "phone: not a dialable phone number" in why["27e8d156-7fee-4f79-94d7-b45d306724d4"]
    assert "id is not a UUID" in why["c3d4e5f6-g7h8-9012-cdef-345678901234"]
    assert "imported as expired" in why["b2c3d4e5-f6g7-8901-bcde-f23456789012"]
    assert "start_time" in why["broken"]
    assert "end_time" in why["broken"]
    assert "+1555" not in " ".join(why.values())
    async with runtime.sessions() as session:
        statuses = dict((await session.execute(select(Shift.id, Shift.status))).all())
        phones = list((await session.scalars(select(Caregiver.phone))).all())
    assert statuses == {"b2c3d4e5-f6g7-8901-bcde-f23456789012": "expired", "future": "open"}
    assert phones == ["+12065550100"]


@pytest.mark.usefixtures("app")
async def test_reimport_reports_existing_records(runtime: Runtime) -> None:
    await _import(runtime, SAMPLE_DOCUMENT)
    again = await _import(runtime, SAMPLE_DOCUMENT)
    assert [outcome for _, _, outcome, _ in again] == [
        "rejected",
        "rejected",
        "exists",
        "exists",
        "exists",
        "rejected",
    ]


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CARETIME_DATABASE_URL", database.url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_cli_imports_the_legacy_sample_and_reports_per_record() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["tenants", "create", "agency"]).exit_code == 0
    command = ["import", "shifts", str(SAMPLE), "--tenant", "agency"]
    result = runner.invoke(cli, command, terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "3 shifts imported, 3 caregivers rejected" in result.output
    assert result.output.count("not a dialable phone number") == 3
    assert "id is not a UUID" in result.output
    assert "+15550001" not in result.output
    for shift in json.loads(SAMPLE.read_text())["shifts"]:
        assert shift["id"] in result.output
    again = runner.invoke(cli, command, terminal_width=250)
    assert "3 shifts already present, 3 caregivers rejected" in again.output
