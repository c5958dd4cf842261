"""`caretime jobs list|show|retry|cancel` against a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from typer.testing import CliRunner

from caretime.cli import app
from caretime.config import Settings, get_settings
from caretime.db import transaction
from caretime.dispatch import cli as dispatch_cli
from caretime.dispatch import enqueue
from caretime.dispatch.models import Job
from caretime.runtime import Runtime

runner = CliRunner()


@pytest.fixture
def cli_database(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CARETIME_DATABASE_URL", settings.database_url)
    monkeypatch.setattr(dispatch_cli, "console", Console(width=200))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _seed(settings: Settings) -> tuple[int, int]:
    """A dead-lettered job and a queued one; returns their ids."""

    async def seed() -> tuple[int, int]:
        runtime = Runtime.build(settings)
        now = datetime.now(UTC)
        try:
            async with transaction(runtime.sessions) as session:
                dead = await enqueue(session, "tests.cli", {"id": "a"}, run_at=now)
                queued = await enqueue(session, "tests.cli", {}, run_at=now + timedelta(hours=1))
                dead_row = await session.get(Job, dead.id)
                assert dead_row is not None
                dead_row.status, dead_row.last_error = "failed", "ConnectionError: timed out"
            return dead.id, queued.id
        finally:
            await runtime.close()

    return asyncio.run(seed())


def test_operator_lists_dead_letters_retries_and_cancels(cli_database: Settings) -> None:
    dead, queued = _seed(cli_database)
    listed = runner.invoke(app, ["jobs", "list", "--status", "failed"])
    assert listed.exit_code == 0
    assert "tests.cli" in listed.output
    assert "ConnectionError: timed out" in listed.output
    shown = runner.invoke(app, ["jobs", "show", str(dead)])
    assert '{"id": "a"}' in shown.output
    assert runner.invoke(app, ["jobs", "retry", str(dead)]).output.strip() == (
        f"job {dead} queued again"
    )
    assert runner.invoke(app, ["jobs", "cancel", str(queued)]).exit_code == 0
    again = runner.invoke(app, ["jobs", "cancel", str(queued)])
    assert again.exit_code == 1
    assert "only queued jobs can be cancelled" in again.output
    assert runner.invoke(app, ["jobs", "list", "--status", "failed"]).output.count("tests.cli") == 0
    assert runner.invoke(app, ["jobs", "show", "999999"]).exit_code == 1
