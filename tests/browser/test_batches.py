"""A batch in a real browser: upload a CSV, read the dry-run preview, commit it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Screenshots, go_to, sign_in

pytestmark = pytest.mark.browser
CSV = (
    "name,phone,tz\n"
    + "".join(f"Patient {i},212-555-{i:04d},\n" for i in range(6))
    + "".join(f"West {i},213-555-{i:04d},\n" for i in range(4))
    + "Nobody,not a phone,\nMars,212-555-9999,Mars/Olympus\n"
)


def test_upload_preview_commit(page: Page, shots: Screenshots) -> None:
    sign_in(page)
    go_to(page, "Batches")
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "patients.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
    )
    page.get_by_label("Strategy").select_option("spread")
    shots.take(page, "01-upload")
    page.get_by_role("button", name="Preview schedule").click()

    expect(page.get_by_role("heading", name="Preview: patients.csv")).to_be_visible()
    expect(page.locator("[data-stat=scheduled]")).to_have_text("10")
    expect(page.locator("[data-stat=rejected]")).to_have_text("2")
    expect(page.locator("#rejected-rows")).to_contain_text("Nobody")
    expect(page.locator("#rejected-rows")).to_contain_text("Mars")
    chart = page.locator("#preview-chart")
    expect(chart.locator("rect").first).to_be_visible()
    expect(chart).to_contain_text("America/New_York")
    expect(chart).to_contain_text("America/Los_Angeles")
    shots.take(page, "02-preview")

    page.get_by_role("button", name="Commit 10 calls").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Batch ")
    expect(page.locator("[data-stat=scheduled]")).to_have_text("10")
    expect(page.get_by_role("link", name="scheduled: 10")).to_be_visible()
    shots.take(page, "03-batch")
    page.get_by_role("link", name="All calls of this batch").click()
    expect(page.locator("#calls tbody tr")).to_have_count(10)
    shots.take(page, "04-calls")
    page.set_viewport_size(PHONE)
    shots.take(page, "05-calls-phone")
