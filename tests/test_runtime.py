"""Process-level start-up: what `caretime serve` and `caretime worker` do that a test's app does
not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from caretime.app import create_app
from caretime.config import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # a test process must not keep what it froze


def _settings(tmp_path: Path) -> Settings:
    return Settings(env="test", database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}", workers=0)


async def test_a_serving_process_freezes_its_start_up_heap(tmp_path: Path, unfrozen: None) -> None:
    """Full collections then skip the modules, models and routes (200 ms saved per pass)."""
    app = create_app(_settings(tmp_path), freeze_heap=True)
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
    assert frozen > 10_000


async def test_an_app_built_by_a_test_freezes_nothing(tmp_path: Path, unfrozen: None) -> None:
    app = create_app(_settings(tmp_path))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
