"""The Webhooks and Activity pages in a real browser: add an endpoint (its secret shown
once), watch a delivery fail and retry it, remove it; read the feed with who acted."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.events import acting_as, emit
from tests.browser.conftest import PHONE, Screenshots, go_to, sign_in
from tests.browser.support import seed
from tests.conftest import LiveServer
from tests.events.receiver import running_receiver
from tests.support import TEST_API_KEY

pytestmark = pytest.mark.browser
WAIT = 30.0  # seconds: a bound on waiting for the worker, never an assertion


def _emit_shift_filled(server: LiveServer) -> None:
    async def work(session: AsyncSession, tenant_id: str) -> None:
        with acting_as("inbound:msg_test"):
            await emit(session, tenant_id=tenant_id, type="shift.filled", subject=("shift", "s1"),
                       data={"status": "filled"}, now=server.runtime.clock.now())  # fmt: skip

    seed(server, work)


def _reload_until(page: Page, selector: str) -> None:
    deadline = time.monotonic() + WAIT
    while not page.locator(selector).count() and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    expect(page.locator(selector).first).to_be_visible()


def test_webhooks_add_see_failure_retry_remove(
    page: Page, live_server: LiveServer, shots: Screenshots
) -> None:
    with running_receiver() as receiver:
        receiver.script["/hook"] = [500]
        sign_in(page)
        go_to(page, "Webhooks")
        page.get_by_label("URL").fill(receiver.url("/hook"))
        page.get_by_label("Event types").fill("shift.*")
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.locator("#secret")
        expect(secret).to_contain_text("whsec_")
        shots.take(page, "01-secret-shown-once")
        page.goto("/ui/webhooks")
        expect(page.locator("#secret")).to_have_count(0)
        page.get_by_role("link", name=receiver.url("/hook")).click()
        _emit_shift_filled(live_server)
        _reload_until(page, "tr:has-text('HTTP 500') [data-status=pending]")
        shots.take(page, "02-delivery-failed")
        receiver.script["/hook"] = [200]
        page.get_by_role("button", name="Retry delivery").first.click()
        _reload_until(page, "[data-status=delivered]")
        shots.take(page, "03-delivered-after-retry")
        page.set_viewport_size(PHONE)
        shots.take(page, "04-endpoint-phone")
        page.get_by_role("link", name="← Webhooks").click()
        page.get_by_role("button", name=f"Remove endpoint {receiver.url('/hook')}").click()
        expect(page.get_by_text("No webhook endpoints yet.")).to_be_visible()
    assert len(receiver.at("/hook")) == 2


def test_activity_lists_changes_with_who_made_them(page: Page, shots: Screenshots) -> None:
    sign_in(page)
    created = page.request.post(
        "/calls", data={"name": "Ann", "phone": "212-555-0100"},
        headers={"Authorization": f"Bearer {TEST_API_KEY}"},
    )  # fmt: skip
    assert created.status == 201
    call_id = created.json()["id"]
    go_to(page, "Activity")
    row = page.locator(f"tr:has-text('{call_id}')")
    expect(row).to_contain_text("call.scheduled")
    expect(row.locator("[data-actor]")).to_contain_text("key:")
    shots.take(page, "01-activity")
    page.get_by_label("Type").fill("shift.*")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No events match these filters.")).to_be_visible()
    page.goto("/ui/activity")
    page.get_by_role("link", name=f"call {call_id}").click()
    expect(page.get_by_label("Subject")).to_have_value(f"call:{call_id}")
    expect(page.locator("tbody tr")).to_have_count(1)
    shots.take(page, "02-one-subject")
