"""A call in a real browser: schedule it for now and watch it reach `completed` without
reloading, with its attempt and provider events on the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging.providers import simulator
from caretime.tenancy import service as tenancy
from caretime.tenancy.models import Tenant
from tests.browser.conftest import PHONE, Screenshots, go_to, sign_in
from tests.browser.support import seed
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Numbers around the world: at any hour one of them is in the middle of its day.
NUMBERS = (
    ("+442079460123", "Europe/London"),
    ("+81335550123", "Asia/Tokyo"),
    ("+12125550123", "America/New_York"),
)


def _daytime_number() -> tuple[str, str]:
    for number, zone in NUMBERS:
        if time(9) <= datetime.now(UTC).astimezone(ZoneInfo(zone)).time() < time(19):
            return number, zone
    raise AssertionError("some number is always in its daytime")


async def _call_any_day(session: AsyncSession, tenant_id: str) -> None:
    """Every day inside the legal hours, holidays included: the test may run on any day."""
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    window: dict[str, Any] = {"start": "08:00", "end": "21:00"}
    calling = {"windows": {day: [window] for day in WEEK}, "skip_holidays": False}
    await tenancy.update_policy(session, tenant.id, {"calling": calling})


@pytest.fixture
def quick_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulated callee answers and hangs up within seconds instead of half a minute."""
    second = timedelta(seconds=1)
    steps = ((0 * second, "queued"), (second, "ringing"), (2 * second, "in_progress"))
    monkeypatch.setitem(simulator.TIMELINES, "voice.completed", (*steps, (5 * second, "completed")))


@pytest.mark.usefixtures("quick_calls")
def test_schedule_a_call_and_watch_it_complete(
    page: Page, live_server: LiveServer, shots: Screenshots
) -> None:
    seed(live_server, _call_any_day)
    number, zone = _daytime_number()
    sign_in(page)
    go_to(page, "Calls")
    page.get_by_label("Patient name").fill("Ada Lovelace")
    page.get_by_label("Phone").fill(number)
    # An hour from now in the patient's zone: the call waits, so the page's button is tested.
    in_an_hour = datetime.now(UTC).astimezone(ZoneInfo(zone)) + timedelta(hours=1)
    page.get_by_label("At a time:").check()
    page.get_by_label("Date and time").fill(f"{in_an_hour:%Y-%m-%dT%H:%M}")
    shots.take(page, "01-schedule")
    page.get_by_role("button", name="Schedule call").click()

    expect(page.get_by_role("heading", name="Call to Ada Lovelace")).to_be_visible()
    status = page.locator("#call-status")
    expect(status).to_have_text("scheduled")
    shots.take(page, "02-scheduled")
    # "Call now" on the call's page rings at once. The page updates itself.
    page.get_by_role("button", name="Call now").click()
    expect(status).to_have_text(re.compile("ringing|in progress|completed"))
    shots.take(page, "03-ringing")
    expect(status).to_have_text("completed")
    expect(page.locator("#attempt-1")).to_contain_text("completed")
    expect(page.get_by_role("button", name="Cancel call")).to_have_count(0)
    shots.take(page, "04-completed")

    go_to(page, "Calls")
    page.get_by_label("Search").fill("lovelace")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#calls tbody tr")).to_have_count(1)
    expect(page.locator("#calls [data-call-status]")).to_have_text("completed")
    shots.take(page, "05-calls")
    page.set_viewport_size(PHONE)
    shots.take(page, "06-calls-phone")
