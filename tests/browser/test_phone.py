"""The phone simulator in a real browser: open a simulated phone, read its inbox, reply, and
see caretime's answer arrive without reloading."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging import send_message
from tests.browser.conftest import Screenshots, go_to, sign_in
from tests.browser.support import seed
from tests.conftest import LiveServer
from tests.support import TEST_API_KEY, bearer

pytestmark = pytest.mark.browser
PHONE = "+12065550123"
SHOWN = "(206) 555-0123"  # numbers of the home plan read in their national format


def test_reply_as_a_simulated_phone(
    page: Page, live_server: LiveServer, shots: Screenshots
) -> None:
    async def text_the_phone(session: AsyncSession, tenant_id: str) -> None:
        await send_message(
            session, tenant_id=tenant_id, channel="sms", to=PHONE,
            body="Reminder: your visit is tomorrow at 9.", idempotency_key="browser:reminder",
        )  # fmt: skip

    seed(live_server, text_the_phone)
    _wait_until_the_simulator_has_it(live_server)
    sign_in(page)
    go_to(page, "Phone")
    page.get_by_role("link", name=SHOWN).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Phone {SHOWN}")
    expect(page.locator("h1 .phone")).to_have_attribute("title", PHONE)
    expect(page.get_by_text("Reminder: your visit is tomorrow at 9.")).to_be_visible()
    shots.take(page, "01-inbox")

    page.get_by_label(f"Reply as {SHOWN}").fill("help")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#reply-outcome")).to_contain_text("help")
    # caretime's answer is sent by a worker; the inbox shows it when it arrives.
    expect(page.get_by_text("Reply to our messages with YES or NO")).to_be_visible()
    shots.take(page, "02-answered")


def _wait_until_the_simulator_has_it(live_server: LiveServer) -> None:
    """A phone is listed once the worker has handed it a message; wait for that hand-over
    (a condition, not a timing assertion) so the page is not opened before it."""
    with httpx.Client(base_url=live_server.url, headers=bearer(TEST_API_KEY)) as http:
        for _ in range(300):
            if http.get("/simulator/messages", params={"to": PHONE}).json()["items"]:
                return
            time.sleep(0.1)
    pytest.fail("the worker never handed the message to the simulator")
