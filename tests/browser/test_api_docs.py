"""The API's own documentation pages in a browser cut off from everything but caretime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import Screenshots
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def offline_page(browser: Browser, live_server: LiveServer) -> Iterator[tuple[Page, list[str]]]:
    """A page whose every request off the caretime server is refused; the scripts, styles
    and fonts among them are noted (ReDoc's "powered by" logo is an image on its CDN: its
    absence hides a logo, nothing more)."""
    context = browser.new_context(base_url=live_server.url)
    refused: list[str] = []

    def only_caretime(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            if route.request.resource_type != "image":
                refused.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_caretime)
    yield context.new_page(), refused
    context.close()


def test_swagger_ui_shows_the_operations_offline(
    offline_page: tuple[Page, list[str]], shots: Screenshots
) -> None:
    page, refused = offline_page
    page.goto("/docs")
    operation = page.locator(".opblock-summary-path[data-path='/schedule']")
    expect(operation).to_be_visible()
    expect(page.get_by_text("Schedule a batch of patient calls")).to_be_visible()
    shots.take(page, "swagger-offline", full_page=False)
    assert refused == []


def test_redoc_shows_the_operations_offline(
    offline_page: tuple[Page, list[str]], shots: Screenshots
) -> None:
    page, refused = offline_page
    page.goto("/redoc")
    expect(
        page.get_by_role("heading", name="Schedule a batch of patient calls").first
    ).to_be_visible()
    shots.take(page, "redoc-offline", full_page=False)
    assert refused == []


def test_the_favicon_is_served(page: Page) -> None:
    response = page.request.get("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an ICO header
