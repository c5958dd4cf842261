"""Browser fixtures: Debian's Chromium driven by Playwright against a live server on SQLite.

No browser is ever downloaded. Without Chromium the tests skip, unless
CARETIME_REQUIRE_BROWSER=1 (CI), where a missing browser fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from caretime.config import Settings
from tests.conftest import Database, LiveServer
from tests.support import TEST_API_KEY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULTS_DIR = Path(__file__).resolve().parents[2] / "test-results" / "browser"
PHONE = {"width": 390, "height": 844}
# Generous: the machine may be busy. A wait, never a speed requirement.
expect.set_options(timeout=20_000)


def chromium_path() -> str | None:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for all the browser tests (each test has its own context: cookies and
    storage start empty); launching one per module cost seconds each on a busy machine."""
    path = chromium_path()
    if path is None:
        message = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CARETIME_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; CARETIME_REQUIRE_BROWSER=1 makes them mandatory")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> Database:
    """Browser tests run on SQLite only: the domain rules are tested on both databases
    elsewhere; here one real server is enough."""
    path = tmp_path / "caretime.db"
    shutil.copyfile(sqlite_template, path)
    return Database("sqlite", f"sqlite+aiosqlite:///{path}")


@pytest.fixture
def settings(database: Database) -> Settings:
    """Like the shared settings, with a worker: in the browser, time passes for real."""
    return Settings(env="test", database_url=database.url, api_key=TEST_API_KEY, workers=1)


@dataclass
class Screenshots:
    directory: Path

    def take(self, page: Page, name: str, *, full_page: bool = True) -> Path:
        """`full_page=False` for very long pages (the API references): rendering all of one
        took Chromium over 30 s on a loaded 2-core machine."""
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    directory = RESULTS_DIR / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return Screenshots(directory)


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, *, key: str = TEST_API_KEY) -> None:
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()


def go_to(page: Page, section: str) -> None:
    """Follow a link in the main navigation."""
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
