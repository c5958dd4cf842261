"""The dashboard shell in a real browser: sign-in, CSRF, sign-out, overview, jobs, time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch import JobContext, PermanentFailure, enqueue, job_handler
from tests.browser.conftest import PHONE, Screenshots, go_to, sign_in
from tests.browser.support import seed
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser
FLAKY_SHOULD_FAIL = {"value": True}


@job_handler("tests.browser.flaky")
async def flaky(ctx: JobContext, payload: dict[str, Any]) -> None:
    if FLAKY_SHOULD_FAIL["value"]:
        raise PermanentFailure("the downstream system said no")


def test_sign_in_lands_on_the_overview(page: Page, shots: Screenshots) -> None:
    page.goto("/ui/jobs")
    expect(page).to_have_url("/ui/signin?next=/ui/jobs")
    shots.take(page, "01-sign-in")
    page.get_by_label("API key").fill("ct_wrong_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown API key")
    shots.take(page, "02-wrong-key")
    sign_in(page)
    expect(page.get_by_role("navigation", name="Sections")).to_contain_text("Jobs")
    expect(page.locator("[data-stat=failed]")).to_have_text("0")
    shots.take(page, "03-overview")
    page.set_viewport_size(PHONE)
    shots.take(page, "04-overview-phone")


def test_keyboard_reaches_the_content_first(page: Page) -> None:
    sign_in(page)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_forged_posts_are_rejected(page: Page, shots: Screenshots) -> None:
    sign_in(page)
    # The session cookie rides along (same browser), but the CSRF token does not.
    forged = page.request.post("/ui/preferences", form={"tz": "Asia/Tokyo"})
    assert forged.status == 403
    status = page.evaluate("""async () => (await fetch("/ui/signout", {method: "POST"})).status""")
    assert status == 403
    page.set_content(forged.text())
    shots.take(page, "forged-post")
    page.goto("/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_sign_out(page: Page, shots: Screenshots) -> None:
    sign_in(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shots.take(page, "signed-out")
    page.goto("/")
    expect(page).to_have_url("/ui/signin?next=/")


def test_time_zone_preference(page: Page, shots: Screenshots) -> None:
    sign_in(page)
    page.locator("header a[href='/ui/preferences']").click()
    page.get_by_label("Show times in").select_option("America/Chicago")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="America/Chicago")).to_be_visible()
    shots.take(page, "preferences")


def test_jobs_retry_and_cancel(page: Page, live_server: LiveServer, shots: Screenshots) -> None:
    FLAKY_SHOULD_FAIL["value"] = True

    async def jobs(session: AsyncSession, tenant_id: str) -> tuple[int, int]:
        now = datetime.now(UTC)
        later = await enqueue(
            session, "tests.browser.flaky", {}, run_at=now + timedelta(days=1), tenant_id=tenant_id
        )
        failing = await enqueue(
            session, "tests.browser.flaky", {}, run_at=now, tenant_id=tenant_id, max_attempts=1
        )
        return later.id, failing.id

    later, failing = seed(live_server, jobs)
    sign_in(page)
    expect(page.locator("[data-stat=failed]")).to_have_text("1", timeout=30_000)
    go_to(page, "Jobs")
    expect(page.locator(f"#job-{later}")).to_be_visible()
    shots.take(page, "01-queued")

    page.get_by_role("button", name=f"Cancel job {later}").click()
    expect(page.get_by_text("No queued jobs.")).to_be_visible()

    page.get_by_role("link", name="Failed").click()
    expect(page.locator(f"#job-{failing}")).to_contain_text("the downstream system said no")
    shots.take(page, "02-failed")
    FLAKY_SHOULD_FAIL["value"] = False
    page.get_by_role("button", name=f"Retry job {failing}").click()
    expect(page.get_by_text("No failed jobs.")).to_be_visible()
    go_to(page, "Overview")
    expect(page.locator("[data-stat=queued]")).to_have_text("0")
    expect(page.locator("[data-stat=failed]")).to_have_text("0")
    shots.take(page, "03-overview-after")
