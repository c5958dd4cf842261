"""The viewer's time zone: chosen once, used for every time on every page."""

from __future__ import annotations

from datetime import timedelta

import httpx

from caretime.db import transaction
from caretime.dispatch import enqueue
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from caretime.web.session import TZ_COOKIE
from tests.web.support import sign_in


async def test_times_are_shown_in_the_chosen_zone(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, "default")
        # The test clock is 15:00 UTC; due an hour later.
        await enqueue(
            session,
            "tests.web.noop",
            {},
            run_at=runtime.clock.now() + timedelta(hours=1),
            tenant_id=tenant.id,
        )
    token = await sign_in(anon_client)
    assert "Mon 02 Mar 16:00" in (await anon_client.get("/ui/jobs")).text
    await anon_client.post("/ui/preferences", data={"tz": "America/New_York", "csrf_token": token})
    assert anon_client.cookies[TZ_COOKIE].strip('"') == "America/New_York"
    page = (await anon_client.get("/ui/jobs")).text
    assert "Mon 02 Mar 11:00" in page
    assert 'datetime="2026-03-02T16:00:00Z"' in page


async def test_an_unknown_zone_is_refused(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    response = await anon_client.post(
        "/ui/preferences", data={"tz": "../../etc/passwd", "csrf_token": token}
    )
    assert response.status_code == 422
    assert TZ_COOKIE not in anon_client.cookies


async def test_a_forged_zone_cookie_falls_back_to_utc(anon_client: httpx.AsyncClient) -> None:
    await sign_in(anon_client)
    anon_client.cookies.set(TZ_COOKIE, "America")
    page = (await anon_client.get("/")).text
    assert "(UTC)" in page
