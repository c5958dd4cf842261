"""Shift fill in a real browser: caregivers, a shift, its fan-out, two "yes" replies from the
phone simulator, and a timeline that updates itself to one assignment and one "already filled"."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Screenshots, go_to, sign_in
from tests.conftest import LiveServer
from tests.shifts.support import NO_QUIET_HOURS
from tests.support import TEST_API_KEY, bearer

pytestmark = pytest.mark.browser
CAREGIVERS = (("alice", "+12062000001"), ("bob", "+12062000002"))
# How the phone simulator's list shows them (national format).
SHOWN = {"+12062000001": "(206) 200-0001", "+12062000002": "(206) 200-0002"}
NEW_YORK = ZoneInfo("America/New_York")


def _add_caregiver(page: Page, caregiver_id: str, phone: str) -> None:
    page.get_by_label("Name").fill(caregiver_id.title())
    page.get_by_label("Mobile phone").fill(phone)
    page.get_by_label("Roles").fill("RN")
    page.get_by_label("Caregiver id").fill(caregiver_id)
    page.get_by_role("button", name="Add caregiver").click()
    expect(page.get_by_role("cell", name=caregiver_id, exact=True)).to_be_visible()


def _reply(page: Page, phone: str, text: str) -> None:
    page.goto("/ui/phone")
    page.get_by_role("link", name=SHOWN[phone]).click()
    expect(page.get_by_text("Text received").first).to_be_visible()
    page.get_by_label(f"Reply as {SHOWN[phone]}").fill(text)
    page.get_by_role("button", name="Send reply").click()


def test_fan_out_and_first_yes_wins(
    page: Page, shots: Screenshots, live_server: LiveServer
) -> None:
    # The real clock may be in the caregivers' night: switch quiet hours off for this one.
    policy = httpx.patch(
        f"{live_server.url}/tenants/me/policy", json=NO_QUIET_HOURS, headers=bearer(TEST_API_KEY)
    )
    assert policy.status_code == 200, policy.text
    sign_in(page)
    go_to(page, "Caregivers")
    for caregiver_id, phone in CAREGIVERS:
        _add_caregiver(page, caregiver_id, phone)
    shots.take(page, "01-caregivers")

    start = (datetime.now(NEW_YORK) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    go_to(page, "Shifts")
    page.get_by_label("Role required").fill("RN")
    page.get_by_label("Shift id").fill("S-100")
    page.get_by_label("Starts").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Time zone of the shift").fill("America/New_York")
    shots.take(page, "02-new-shift")
    page.get_by_role("button", name="Create shift").click()
    expect(page.get_by_role("heading", name="Shift S-100")).to_be_visible()

    page.get_by_role("button", name="Start fan-out").click()
    timeline = page.locator("#timeline")
    expect(timeline.locator("li.entry-offer")).to_have_count(2)
    shots.take(page, "03-fanned-out")

    # The shift page stays open in its own tab: it must update itself as replies arrive.
    phone = page.context.new_page()
    alice, bob = (number for _, number in CAREGIVERS)
    _reply(phone, alice, "yes")
    expect(phone.locator("#reply-outcome")).to_contain_text("assigned")
    shots.take(phone, "04-phone-alice")
    _reply(phone, bob, "YES please")
    expect(phone.locator("#reply-outcome")).to_contain_text("already filled")
    shots.take(phone, "05-phone-bob")

    expect(page.locator("#shift-status")).to_have_text("filled")
    assigned = page.locator("#assigned .named")  # the caregiver's name, the id on hover
    expect(assigned).to_have_text("Alice")
    expect(assigned).to_have_attribute("title", "alice")
    expect(timeline.locator("li.entry-assigned .named")).to_have_text("Alice")
    expect(timeline.locator("li.entry-assigned")).to_have_count(1)
    expect(timeline.get_by_text("already filled")).to_have_count(1)
    shots.take(page, "06-timeline")
    page.set_viewport_size(PHONE)
    shots.take(page, "07-timeline-phone")
