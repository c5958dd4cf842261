"""Call pages through the ASGI app: schedule, search, reschedule, cancel; batch preview and
commit from a CSV; the detail page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.web import calls as web_calls
from tests.web.support import sign_in

CSV = "name,phone\nAnn,212-555-0100\nBob,212-555-0101\nNobody,not a phone\n"


async def _post(client: httpx.AsyncClient, path: str, token: str, **form: str) -> httpx.Response:
    return await client.post(path, data={**form, "csrf_token": token})


async def _schedule(client: httpx.AsyncClient, token: str, **form: str) -> str:
    response = await _post(client, "/ui/calls", token, **form)
    assert response.status_code == 303, response.text
    return str(response.headers["location"]).rsplit("/", 1)[1]


async def test_schedule_now_and_at_a_time(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    now = await _schedule(anon_client, token, name="Ann", phone="212-555-0100", when="now")
    later = await _schedule(
        anon_client, token, name="Bob", phone="212-555-0101", when="at",
        at="2026-03-03T11:30", tz="America/New_York",
    )  # fmt: skip
    page = (await anon_client.get(f"/ui/calls/{later}")).text
    assert 'datetime="2026-03-03T16:30:00Z"' in page
    assert "11:30 EST for the patient" in page
    listing = (await anon_client.get("/ui/calls")).text
    assert f'id="call-{now}"' in listing
    assert f'id="call-{later}"' in listing


async def test_call_now_is_this_moment_not_the_next_minute(
    anon_client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 2, 15, 0, 37, tzinfo=UTC))  # 10:00:37 in New York
    token = await sign_in(anon_client)
    call = await _schedule(anon_client, token, name="Ann", phone="212-555-0100", when="now")
    assert 'datetime="2026-03-02T15:00:37Z"' in (await anon_client.get(f"/ui/calls/{call}")).text


async def test_call_now_outside_the_window_takes_the_earliest_allowed_moment(
    anon_client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 3, 3, 0, 37, tzinfo=UTC))  # 22:00:37 in New York
    token = await sign_in(anon_client)
    call = await _schedule(anon_client, token, name="Ann", phone="212-555-0100", when="now")
    page = (await anon_client.get(f"/ui/calls/{call}")).text
    assert 'datetime="2026-03-03T14:00:00Z"' in page  # 09:00 EST, the tenant's window opens


async def test_the_calls_table_is_in_time_order_across_pages(
    anon_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_calls, "PAGE_SIZE", 2)
    token = await sign_in(anon_client)
    made = {}
    for name, at in (("Late", "2026-03-05T10:00"), ("Early", "2026-03-03T10:00"),
                     ("Middle", "2026-03-04T10:00"), ("Soon", "2026-03-02T14:00")):  # fmt: skip
        made[name] = await _schedule(
            anon_client, token, name=name, phone=f"212-555-01{len(made):02}", when="at",
            at=at, tz="America/New_York",
        )  # fmt: skip
    first = (await anon_client.get("/ui/calls")).text
    assert _row_order(first) == [made["Soon"], made["Early"]]
    cursor = re.search(r'cursor=([^"&]+)', first)
    assert cursor is not None
    second = (await anon_client.get(f"/ui/calls?cursor={cursor.group(1)}")).text
    assert _row_order(second) == [made["Middle"], made["Late"]]


def _row_order(page: str) -> list[str]:
    return re.findall(r'<tr id="call-([^"]+)"', page)


async def test_search_and_status_filter(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    ann = await _schedule(anon_client, token, name="Ann Smith", phone="212-555-0100")
    bob = await _schedule(anon_client, token, name="Bob Jones", phone="212-555-0199")
    by_name = (await anon_client.get("/ui/calls/table?q=smith")).text
    assert f'id="call-{ann}"' in by_name
    assert f'id="call-{bob}"' not in by_name
    by_digits = (await anon_client.get("/ui/calls/table?q=0199")).text
    assert f'id="call-{bob}"' in by_digits
    assert f'id="call-{ann}"' not in by_digits
    await _post(anon_client, f"/ui/calls/{ann}/cancel", token)
    cancelled = (await anon_client.get("/ui/calls/table?status=cancelled")).text
    assert f'id="call-{ann}"' in cancelled
    assert f'id="call-{bob}"' not in cancelled


async def test_reschedule_and_cancel(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    call = await _schedule(anon_client, token, name="Ann", phone="212-555-0100")
    response = await _post(
        anon_client, f"/ui/calls/{call}/reschedule", token,
        at="2026-03-04T10:15", tz="America/New_York",
    )  # fmt: skip
    assert response.status_code == 303, response.text
    assert 'datetime="2026-03-04T15:15:00Z"' in (await anon_client.get(f"/ui/calls/{call}")).text
    await _post(anon_client, f"/ui/calls/{call}/cancel", token)
    live = (await anon_client.get(f"/ui/calls/{call}/live")).text
    assert "cancelled" in live
    again = await anon_client.post(
        f"/ui/calls/{call}/reschedule",
        data={"at": "2026-03-04T10:30", "tz": "America/New_York"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert again.status_code == 409
    assert again.headers["hx-retarget"] == "#alerts"


async def test_a_time_outside_the_calling_window_is_explained(
    anon_client: httpx.AsyncClient,
) -> None:
    token = await sign_in(anon_client)
    response = await _post(
        anon_client, "/ui/calls", token, name="Ann", phone="212-555-0100", when="at",
        at="2026-03-03T03:00", tz="America/New_York",
    )  # fmt: skip
    assert response.status_code == 422


async def test_csv_preview_then_commit(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    preview = await anon_client.post(
        "/ui/batches/preview",
        data={"csrf_token": token, "strategy": "earliest"},
        files={"file": ("patients.csv", CSV.encode(), "text/csv")},
    )
    assert preview.status_code == 200, preview.text
    page = preview.text
    assert '<dd data-stat="scheduled">2</dd>' in page
    assert '<dd data-stat="rejected">1</dd>' in page
    assert "Nobody" in page
    assert "Calls per hour" in page
    assert "<rect" in page
    assert "No calls match" in (await anon_client.get("/ui/calls/table")).text  # a dry run

    form = {
        "csrf_token": token,
        "csv_text": CSV,
        "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', page)[1],  # type: ignore[index]
        "strategy": "earliest",
    }
    committed = await anon_client.post("/ui/batches", data=form)
    assert committed.status_code == 303, committed.text
    twice = await anon_client.post("/ui/batches", data=form)
    assert twice.headers["location"] == committed.headers["location"]
    batch = (await anon_client.get(committed.headers["location"])).text
    assert '<dd data-stat="scheduled">2</dd>' in batch
    assert "scheduled: 2" in batch
    listing = (await anon_client.get("/ui/batches")).text
    assert committed.headers["location"].rsplit("/", 1)[1] in listing


async def test_a_csv_without_the_columns_is_refused(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    response = await anon_client.post(
        "/ui/batches/preview",
        data={"csrf_token": token},
        files={"file": ("x.csv", b"who,number\nAnn,1\n", "text/csv")},
    )
    assert response.status_code == 422
    assert "lacks column(s): name, phone" in response.text


async def test_a_refused_call_now_says_when_in_the_viewers_zone(
    anon_client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    token = await sign_in(anon_client)
    anon_client.cookies.set("caretime_tz", "Europe/Paris")
    call = await _schedule(anon_client, token, name="Ann", phone="212-555-0100")
    clock.advance(timedelta(hours=8, microseconds=250000))  # 18:00 in New York
    response = await anon_client.post(
        f"/ui/calls/{call}/dispatch", headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert response.status_code == 422
    # 09:00 in New York on Tuesday is 15:00 in Paris (both on standard time on 3 March).
    assert "The next allowed moment is Tue 2026-03-03 15:00 CET (Europe/Paris)" in response.text
    assert ".25" not in response.text
