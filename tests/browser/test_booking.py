"""Booking in a real browser: publish availability, hold a slot, watch the hold count down,
confirm it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Screenshots, go_to, sign_in

pytestmark = pytest.mark.browser
NEW_YORK = ZoneInfo("America/New_York")


def test_publish_reserve_countdown_confirm(page: Page, shots: Screenshots) -> None:
    day = (datetime.now(NEW_YORK) + timedelta(days=3)).date()
    sign_in(page)
    go_to(page, "Booking")
    page.get_by_label("Name").fill("Dr Who")
    page.get_by_label("Time zone").fill("America/New_York")
    page.get_by_label("Provider id").fill("dr-who")
    shots.take(page, "01-providers")
    page.get_by_role("button", name="Add provider").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dr Who")

    page.goto(f"/ui/booking/dr-who?week={day.isoformat()}")
    add_time = page.get_by_role("form", name="Add time on a date")
    add_time.get_by_label("Date").fill(day.isoformat())
    add_time.get_by_label("From").fill("09:00")
    add_time.get_by_label("Until").fill("12:00")
    add_time.get_by_role("button", name="Add time").click()
    expect(page.locator(f"#day-{day.isoformat()}")).to_contain_text("09:00–12:00")
    expect(page.get_by_text("12 free slots this week")).to_be_visible()
    shots.take(page, "02-availability")

    page.get_by_label("Slot", exact=True).select_option(index=0)
    page.get_by_label("Client id").fill("patient-7")
    page.get_by_role("button", name="Hold slot").click()
    row = page.locator("#reservations tbody tr").first
    expect(row.locator("[data-status]")).to_have_text("held")
    countdown = row.locator("[data-countdown-to]")
    expect(countdown).to_have_text(re.compile(r"^(29|30):\d\d left$"))
    before = countdown.text_content()
    expect(countdown).not_to_have_text(before or "")  # it ticks without a reload
    shots.take(page, "03-held")

    row.get_by_role("button", name="Confirm reservation for patient-7").click()
    row = page.locator("#reservations tbody tr").first
    expect(row.locator("[data-status]")).to_have_text("confirmed")
    expect(row.locator("[data-countdown-to]")).to_have_count(0)
    expect(page.get_by_text("11 free slots this week")).to_be_visible()
    shots.take(page, "04-confirmed")
    page.set_viewport_size(PHONE)
    shots.take(page, "05-confirmed-phone")
