"""Operator CLI: tenants and keys, checked against the real API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from caretime.cli import app
from caretime.config import get_settings
from tests.conftest import Database, LiveServer
from tests.support import bearer

runner = CliRunner()


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CARETIME_DATABASE_URL", database.url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.usefixtures("cli_env")
def test_created_key_works_until_revoked(live_server: LiveServer) -> None:
    _invoke("tenants", "create", "acme-home-health")
    output = _invoke("keys", "create", "--tenant", "acme-home-health", "--name", "ops")
    key = output.strip().splitlines()[-1]
    assert key.startswith("ct_")

    with httpx.Client(base_url=live_server.url) as http:
        me = http.get("/tenants/me", headers=bearer(key))
        assert me.status_code == 200
        assert me.json()["name"] == "acme-home-health"

        listing = _invoke("keys", "list", "--tenant", "acme-home-health")
        assert key[:10] in listing
        assert key not in listing

        _invoke("keys", "revoke", key[:10], "--tenant", "acme-home-health")
        assert http.get("/tenants/me", headers=bearer(key)).status_code == 401


@pytest.mark.usefixtures("cli_env")
def test_errors_are_reported_without_a_traceback() -> None:
    _invoke("tenants", "create", "twice")
    again = runner.invoke(app, ["tenants", "create", "twice"])
    assert again.exit_code == 1
    assert "already exists" in again.output
    missing = runner.invoke(app, ["keys", "create", "--tenant", "nobody"])
    assert missing.exit_code == 1
    assert "no tenant named" in missing.output
