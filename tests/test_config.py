"""Settings: environment-driven, and unsafe defaults refuse to run in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from caretime.config import DEMO_API_KEY, Settings


def test_reads_the_caretime_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARETIME_DATABASE_URL", "postgresql+asyncpg://db/caretime")
    monkeypatch.setenv("CARETIME_VOICE_PROVIDER", "callapi")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://db/caretime"
    assert settings.voice_provider == "callapi"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"api_key": DEMO_API_KEY, "session_secret": "s3cret-from-vault"}, "demo key"),
        ({}, "CARETIME_SESSION_SECRET"),
        ({"session_secret": "s3cret-from-vault", "demo_data": True}, "demo patients"),
    ],
)
def test_production_refuses_unsafe_defaults(overrides: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(env="production", **overrides)  # type: ignore[arg-type]


def test_production_starts_with_real_secrets() -> None:
    settings = Settings(env="production", session_secret="s3cret-from-vault", api_key="ct_real_key")  # type: ignore[arg-type]
    assert settings.env == "production"
