"""What a coordinator sees without changing a setting: times in their own zone, phone numbers
as people write them, the calls table in time order, today's work counted as today's, and
forms that start from today."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Screenshots, go_to, sign_in
from tests.conftest import LiveServer
from tests.shifts.support import NO_QUIET_HOURS
from tests.support import TEST_API_KEY, bearer

pytestmark = pytest.mark.browser
CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def chicago_page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A browser whose computer is set to Chicago time."""
    context = browser.new_context(base_url=live_server.url, timezone_id="America/Chicago")
    yield context.new_page()
    context.close()


def _schedule(page: Page, name: str, phone: str, at: datetime) -> None:
    page.goto("/ui/calls")
    page.get_by_label("Patient name").fill(name)
    page.get_by_label("Phone").fill(phone)
    page.get_by_label("At a time:").check()
    page.get_by_label("Date and time").fill(at.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("In the time zone").select_option("America/New_York")
    page.get_by_role("button", name="Schedule call").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def _shown(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%a %d %b %H:%M")


def test_times_are_shown_in_the_browsers_zone_until_one_is_chosen(
    chicago_page: Page, shots: Screenshots
) -> None:
    page = chicago_page
    sign_in(page)
    zone_link = page.locator("header a[href='/ui/preferences']")
    expect(zone_link).to_have_text("America/Chicago")
    at = (datetime.now(NEW_YORK) + timedelta(days=2)).replace(
        hour=11, minute=30, second=0, microsecond=0
    )
    _schedule(page, "Ann Chicago", "212-555-0142", at)
    expect(page.locator("main time").first).to_have_text(_shown(at, CHICAGO))
    shots.take(page, "01-call-in-chicago-time")

    go_to(page, "Overview")
    zone_link.click()
    expect(page.get_by_label("Show times in")).to_have_value("")
    expect(page.get_by_text("(your browser's zone)")).to_be_visible()
    page.get_by_label("Show times in").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Save").click()
    expect(zone_link).to_have_text("Asia/Tokyo")
    page.get_by_label("Show times in").select_option("")
    page.get_by_role("button", name="Save").click()
    expect(zone_link).to_have_text("America/Chicago")
    shots.take(page, "02-following-the-browser")


def test_a_session_without_the_browser_zone_learns_it_on_the_first_page(
    chicago_page: Page,
) -> None:
    page = chicago_page
    sign_in(page)
    page.context.clear_cookies(name="caretime_browser_tz")
    page.goto("/ui/jobs")
    expect(page.locator("header a[href='/ui/preferences']")).to_have_text("America/Chicago")


def test_calls_read_in_time_order_with_national_phone_numbers(
    page: Page, shots: Screenshots
) -> None:
    sign_in(page)
    base = (datetime.now(NEW_YORK) + timedelta(days=2)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    _schedule(page, "Later Patient", "+1 212 555 0177", base + timedelta(hours=3))
    _schedule(page, "Earlier Patient", "(212) 555-0188", base)
    go_to(page, "Calls")
    rows = page.locator("#calls tbody tr")
    expect(rows.locator("td:first-child")).to_have_text(["Earlier Patient", "Later Patient"])
    phone = rows.first.locator(".phone")
    expect(phone).to_have_text("(212) 555-0188")
    expect(phone).to_have_attribute("title", "+12125550188")
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Earlier Patient")
    expect(page.locator("main .phone")).to_have_text("(212) 555-0188")
    shots.take(page, "calls-in-time-order")


def _api(server: LiveServer, path: str, body: object = None) -> dict[str, object]:
    with httpx.Client(base_url=server.url, headers=bearer(TEST_API_KEY)) as http:
        response = http.post(path, json=body)
    assert response.status_code < 300, response.text
    return dict(response.json()) if response.content else {}


def test_today_counts_holds_made_and_shifts_filled_today(
    page: Page, live_server: LiveServer, shots: Screenshots
) -> None:
    """Next week's visit held today and next week's shift filled today are today's work."""
    next_week = datetime.now(NEW_YORK).date() + timedelta(days=7)
    _api(live_server, "/providers", {"id": "dr-a", "name": "Dr A", "tz": "America/New_York"})
    window = {"date": next_week.isoformat(), "start": "09:00", "end": "12:00"}
    _api(live_server, "/providers/dr-a/availability", window)
    slot = datetime.combine(next_week, datetime.min.time(), NEW_YORK).replace(hour=9)
    hold = {"provider_id": "dr-a", "slot_start": slot.isoformat(), "client_id": "c-1"}
    _api(live_server, "/reservations", hold)
    nurse = {"id": "alice", "name": "Alice", "phone": "+12062000001", "roles": ["RN"]}
    _api(live_server, "/caregivers", nurse)
    with httpx.Client(base_url=live_server.url, headers=bearer(TEST_API_KEY)) as http:
        # The real clock may be in Alice's night: quiet hours would hold her offer.
        assert http.patch("/tenants/me/policy", json=NO_QUIET_HOURS).status_code == 200
    start = slot + timedelta(days=1)
    shift = {"id": "S-7", "role_required": "RN", "start_time": start.isoformat(),
             "end_time": (start + timedelta(hours=8)).isoformat()}  # fmt: skip
    _api(live_server, "/shifts", shift)
    _api(live_server, "/shifts/S-7/fanout")
    reply = {"from": "+12062000001", "body": "yes", "shift_id": "S-7"}
    assert _api(live_server, "/messages/inbound", reply)["action"] == "assigned"

    sign_in(page)
    expect(page.locator("[data-stat=appointments-held]")).to_have_text("1")
    expect(page.locator("[data-stat=appointments-on-hold]")).to_have_text("1")
    expect(page.locator("[data-stat=shifts-filled]")).to_have_text("1")
    expect(page.locator("[data-stat=shifts-open]")).to_have_text("0")
    shots.take(page, "overview-today")

    page.goto("/ui/shifts/S-7")
    assigned = page.locator("#assigned .named")
    expect(assigned).to_have_text("Alice")
    expect(assigned).to_have_attribute("title", "alice")


def test_adding_time_starts_from_today(page: Page, live_server: LiveServer) -> None:
    _api(live_server, "/providers", {"id": "dr-b", "name": "Dr B", "tz": "America/New_York"})
    today = datetime.now(NEW_YORK).date()
    sign_in(page)
    page.goto(f"/ui/booking/dr-b?week={today.isoformat()}")
    add_time = page.get_by_role("form", name="Add time on a date")
    expect(add_time.get_by_label("Date")).to_have_value(today.isoformat())
    expect(page.get_by_label("Starting")).to_have_value(today.isoformat())
