"""Recurring calls (#16 item 6): an RRULE in the recipient's local time, one live occurrence
at a time, each planned inside the windows when the previous ends, never beyond the horizon,
under a frozen clock with the simulator answering."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from caretime.clock import FrozenClock
from caretime.config import Settings
from caretime.dispatch.worker import Dispatcher
from tests.conftest import Database
from tests.outreach.support import set_calling_policy
from tests.support import TEST_API_KEY

NEW_YORK = ZoneInfo("America/New_York")
PHONE = "212-555-0100"
NO_ANSWER = "212-555-0109"  # the simulator leaves numbers ending in 9 unanswered
WEEKLY_MONDAY_10 = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;COUNT=3"


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        api_key=TEST_API_KEY,
        workers=0,
        simulator_no_answer_digits="9",
    )


async def start(client: httpx.AsyncClient, *, status: int = 201, **body: object) -> dict:
    response = await client.post("/calls", json={"name": "Ann", "phone": PHONE, **body})
    assert response.status_code == status, response.text
    return response.json()


async def series_of(client: httpx.AsyncClient, series_id: str) -> dict:
    response = await client.get(f"/calls/series/{series_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def run_call(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher, call: dict
) -> dict:
    """Let the call ring at its time and play out in the simulator (answered: completed,
    else unanswered), then let the series move on."""
    clock.set(datetime.fromisoformat(call["scheduled"]))
    for delta in (0, 1, 5, 30, 1):
        clock.advance(timedelta(seconds=delta))
        await dispatcher.run_pending()
    return (await client.get(f"/calls/{call['id']}")).json()


async def current_call(client: httpx.AsyncClient, series_id: str) -> dict:
    series = await series_of(client, series_id)
    assert series["current_call_id"] is not None, series
    return (await client.get(f"/calls/{series['current_call_id']}")).json()


def local(instant: str) -> str:
    return datetime.fromisoformat(instant).astimezone(NEW_YORK).strftime("%a %H:%M %Z")


async def test_weekly_monday_ten_oclock_stays_ten_local_across_the_dst_change(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    # Now: Monday 2026-03-02 10:00 EST. DST starts Sunday 2026-03-08.
    first = await start(client, recurrence=WEEKLY_MONDAY_10, purpose="weekly-check-in")
    series_id = first["series_id"]
    assert series_id.startswith("ser_")
    times = [first["scheduled"]]
    call = first
    for _ in range(2):
        assert (await run_call(client, clock, dispatcher, call))["status"] == "completed"
        call = await current_call(client, series_id)
        times.append(call["scheduled"])
    assert times == ["2026-03-02T15:00:00Z", "2026-03-09T14:00:00Z", "2026-03-16T14:00:00Z"]
    assert [local(t) for t in times] == ["Mon 10:00 EST", "Mon 10:00 EDT", "Mon 10:00 EDT"]
    await run_call(client, clock, dispatcher, call)
    series = await series_of(client, series_id)
    assert (series["status"], series["occurrences"], series["ended_reason"]) == (
        "finished", 3, "the rule has no more occurrences")  # fmt: skip
    assert [c["status"] for c in series["calls"]] == ["completed"] * 3
    assert series["next_occurrence"] is None


async def test_an_occurrence_outside_the_windows_is_moved_inside(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    # 07:00 local is before the 09:00-17:00 window; across the DST change it stays 09:00.
    first = await start(client, recurrence="FREQ=WEEKLY;BYDAY=TU;BYHOUR=7;COUNT=2")
    assert local(first["scheduled"]) == "Tue 09:00 EST"
    await run_call(client, clock, dispatcher, first)
    second = await current_call(client, first["series_id"])
    assert (second["scheduled"], local(second["scheduled"])) == (
        "2026-03-10T13:00:00Z", "Tue 09:00 EDT")  # fmt: skip


async def test_an_occurrence_is_never_planned_past_the_next_one(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    # Calls only on Mondays: the daily 10:00 occurrences of Tuesday to Saturday cannot be
    # placed before their successor and are passed over; Sunday's goes to Monday 09:00,
    # before Monday's own 10:00.
    closed: dict[str, list] = {day: [] for day in ("tue", "wed", "thu", "fri", "sat", "sun")}
    monday = [{"start": "09:00", "end": "17:00"}]
    await set_calling_policy(client, windows={"mon": monday, **closed})
    first = await start(client, recurrence="FREQ=DAILY;BYHOUR=10;COUNT=8")
    assert first["scheduled"] == "2026-03-02T15:00:00Z"
    await run_call(client, clock, dispatcher, first)
    second = await current_call(client, first["series_id"])
    assert local(second["scheduled"]) == "Mon 09:00 EDT"
    assert second["scheduled"] == "2026-03-09T13:00:00Z"
    series = await series_of(client, first["series_id"])
    assert (series["skipped"], series["next_occurrence_local"]) == (5, "2026-03-09T10:00")
    events = (await client.get(f"/calls/series/{first['series_id']}/events")).json()["items"]
    skipped = [e for e in events if e["type"] == "call_series.occurrence_skipped"]
    assert skipped[0]["data"]["skipped"] == 5


async def test_the_next_occurrence_waits_for_the_horizon(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    await set_calling_policy(client, horizon_days=3)
    first = await start(client, recurrence=WEEKLY_MONDAY_10)
    await run_call(client, clock, dispatcher, first)
    series = await series_of(client, first["series_id"])
    assert (series["status"], series["current_call_id"], series["next_occurrence"]) == (
        "active", None, "2026-03-09T14:00:00Z")  # fmt: skip
    # Three days before it, less a minute: still nothing; a minute later it is planned.
    clock.set(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    await dispatcher.run_pending()
    assert (await series_of(client, first["series_id"]))["current_call_id"] is None
    clock.advance(timedelta(minutes=1))
    await dispatcher.run_pending()
    second = await current_call(client, first["series_id"])
    assert second["scheduled"] == "2026-03-09T14:00:00Z"


async def test_a_first_occurrence_beyond_the_horizon_is_accepted_and_waits(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    monthly = "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=11"
    body = await start(client, status=202, recurrence=monthly)
    assert (body["status"], body["next_occurrence"], body["current_call_id"]) == (
        "active", "2026-04-01T15:00:00Z", None)  # fmt: skip
    clock.set(datetime(2026, 3, 18, 15, 1, tzinfo=UTC))
    await dispatcher.run_pending()
    call = await current_call(client, body["id"])
    assert call["scheduled"] == "2026-04-01T15:00:00Z"


async def test_unanswered_occurrences_retry_then_the_next_is_planned(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    first = await start(client, phone=NO_ANSWER, recurrence=WEEKLY_MONDAY_10, max_attempts=1)
    assert first["max_attempts"] == 1
    assert (await run_call(client, clock, dispatcher, first))["status"] == "expired"
    second = await current_call(client, first["series_id"])
    # The series keeps its own max_attempts for every occurrence.
    assert (second["scheduled"], second["max_attempts"]) == ("2026-03-09T14:00:00Z", 1)


async def test_cancelling_the_series_cancels_its_pending_call(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    # Without BYHOUR, the time of day is the one of `scheduled` (local time: no offset).
    weekly = "FREQ=WEEKLY;BYDAY=MO;COUNT=3"
    first = await start(client, recurrence=weekly, scheduled="2026-03-02T11:30:00")
    assert local(first["scheduled"]) == "Mon 11:30 EST"
    cancelled = await client.post(f"/calls/series/{first['series_id']}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert (body["status"], body["next_occurrence"], body["calls"][0]["status"]) == (
        "cancelled", None, "cancelled")  # fmt: skip
    clock.set(datetime(2026, 3, 20, tzinfo=UTC))
    await dispatcher.run_pending()
    calls = (await client.get("/calls", params={"series_id": first["series_id"]})).json()
    assert [c["status"] for c in calls["items"]] == ["cancelled"]
    voice = await client.get("/simulator/messages", params={"to": PHONE, "channel": "voice"})
    assert voice.json()["items"] == []
    again = await client.post(f"/calls/series/{first['series_id']}/cancel")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    events = (await client.get(f"/calls/series/{first['series_id']}/events")).json()["items"]
    assert [e["type"] for e in events] == ["call_series.created", "call_series.cancelled"]


async def test_cancelling_one_occurrence_moves_the_series_to_the_next(
    client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    first = await start(client, recurrence=WEEKLY_MONDAY_10)
    assert (await client.delete(f"/calls/{first['id']}")).status_code == 200
    await dispatcher.run_pending()
    second = await current_call(client, first["series_id"])
    assert second["scheduled"] == "2026-03-09T14:00:00Z"


async def test_an_opt_out_stops_the_series(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    first = await start(client, recurrence=WEEKLY_MONDAY_10)
    await client.put(
        f"/contacts/{PHONE}/consent",
        json={"channel": "voice", "opted_out": True, "note": "asked by letter"},
    )
    ended = await run_call(client, clock, dispatcher, first)
    assert ended["status"] == "failed"
    series = await series_of(client, first["series_id"])
    assert series["status"] == "finished"
    assert series["ended_reason"] == (
        "stopped: the recipient opted out of calls on 2026-03-02T15:00:00Z (recorded by the tenant)"
    )
    calls = (await client.get("/calls", params={"series_id": first["series_id"]})).json()
    assert len(calls["items"]) == 1


async def test_an_opted_out_number_cannot_start_a_series(client: httpx.AsyncClient) -> None:
    stop = {"channel": "voice", "opted_out": True, "note": "asked by letter"}
    assert (await client.put(f"/contacts/{PHONE}/consent", json=stop)).status_code == 200
    response = await client.post(
        "/calls", json={"name": "Ann", "phone": PHONE, "recurrence": WEEKLY_MONDAY_10}
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("opted-out")


async def test_the_live_occurrence_is_the_one_live_call_for_its_purpose(
    client: httpx.AsyncClient,
) -> None:
    first = await start(client, recurrence=WEEKLY_MONDAY_10, purpose="check-in")
    twin = await client.post("/calls", json={"name": "Ann", "phone": PHONE, "purpose": "check-in"})
    assert twin.status_code == 409
    assert twin.json()["existing_call_id"] == first["id"]
    second_series = await client.post(
        "/calls",
        json={"name": "Ann", "phone": PHONE, "purpose": "check-in", "recurrence": "FREQ=DAILY"},
    )
    assert second_series.status_code == 409


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=HOURLY", "FREQ=HOURLY is more often than daily"),
        ("FREQ=WEEKLY;BYDAY=XX", "not a valid RRULE: invalid 'BYDAY': XX"),
        ("BYDAY=MO", "FREQ is required"),
        ("FREQ=WEEKLY;COUNT=3;UNTIL=20260430", "give COUNT or UNTIL, not both"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "the rule's days never exist"),
        ("FREQ=WEEKLY;BYSECOND=5", "BYSECOND is not supported"),
        ("DTSTART:20260302T100000\nRRULE:FREQ=WEEKLY", "give one RRULE line"),
        ("FREQ=DAILY;BYHOUR=9,15", "one time of day per rule"),
    ],
)
async def test_a_bad_rrule_is_a_422_naming_the_field(
    client: httpx.AsyncClient, rule: str, words: str
) -> None:
    response = await client.post("/calls", json={"name": "A", "phone": PHONE, "recurrence": rule})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["loc"] == ["body", "recurrence"]
    assert words in error["msg"]


async def test_a_rule_that_ended_before_it_starts_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/calls",
        json={"name": "A", "phone": PHONE, "recurrence": "FREQ=WEEKLY;UNTIL=20260101"},
    )
    assert response.status_code == 422
    assert "no occurrence" in response.json()["detail"]


async def test_until_a_date_includes_that_local_day(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    first = await start(client, recurrence="FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;UNTIL=20260309")
    await run_call(client, clock, dispatcher, first)
    second = await current_call(client, first["series_id"])
    assert second["scheduled"] == "2026-03-09T14:00:00Z"
    await run_call(client, clock, dispatcher, second)
    assert (await series_of(client, first["series_id"]))["status"] == "finished"


async def test_batch_items_and_csv_rows_start_series(client: httpx.AsyncClient) -> None:
    items = [
        {"name": "A", "phone": "212-555-0101", "recurrence": WEEKLY_MONDAY_10},
        {"name": "B", "phone": "212-555-0102", "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1"},
        {"name": "C", "phone": "212-555-0103", "recurrence": "FREQ=SECONDLY"},
        {"name": "D", "phone": "212-555-0104"},
    ]
    answer = (await client.post("/schedule", json=items)).json()
    assert [a["status"] for a in answer] == ["scheduled", "waiting", "rejected", "scheduled"]
    assert answer[0]["series_id"].startswith("ser_")
    assert answer[0]["scheduled"] == "2026-03-02T15:00:00Z"
    assert (answer[1]["next_occurrence"], answer[1]["scheduled_task_id"]) == (
        "2026-04-01T14:00:00Z", None)  # fmt: skip
    assert "more often than daily" in answer[2]["error"]
    assert "series_id" not in answer[3]
    call = (await client.get(f"/calls/{answer[0]['scheduled_task_id']}")).json()
    assert call["series_id"] == answer[0]["series_id"]
    csv = "name,phone,recurrence\nE,212-555-0105,FREQ=WEEKLY;BYDAY=TU;BYHOUR=9\nF,212-555-0106,\n"
    headers = {"content-type": "text/csv"}
    batch = await client.post("/outreach/batches", content=csv, headers=headers)
    assert (batch.status_code, batch.json()["scheduled"]) == (201, 2)
    calls = (await client.get("/calls", params={"batch_id": batch.json()["id"]})).json()["items"]
    assert sorted(c["series_id"] is not None for c in calls) == [False, True]
    listed = (await client.get("/calls/series", params={"status": "active"})).json()
    assert len(listed["items"]) == 3


async def test_a_batchs_series_are_written_together_each_with_its_call_and_events(
    client: httpx.AsyncClient,
) -> None:
    # Written in one go: the second item for the same number and purpose is still refused
    # (the live-call index), and leaves no series behind; the others each get theirs.
    items = [
        {"name": "A", "phone": "212-555-0101", "recurrence": WEEKLY_MONDAY_10},
        {"name": "A again", "phone": "(212) 555-0101", "recurrence": WEEKLY_MONDAY_10},
        {"name": "B", "phone": "212-555-0102", "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1"},
        {"name": "C", "phone": "212-555-0101", "recurrence": WEEKLY_MONDAY_10, "purpose": "x"},
    ]
    answer = (await client.post("/schedule", json=items)).json()
    assert [a["status"] for a in answer] == ["scheduled", "rejected", "waiting", "scheduled"]
    assert answer[1]["error"] == "this number already has a live call"
    listed = (await client.get("/calls/series", params={"status": "active"})).json()["items"]
    series = {a["series_id"] for a in answer if a["status"] != "rejected"}
    assert {s["id"] for s in listed} == series
    created = (await client.get("/events", params={"type": "call_series.created"})).json()
    assert {e["subject"]["id"] for e in created["items"]} == series
    # Each created series names its own first call (the waiting one has none yet).
    assert {e["subject"]["id"]: e["data"]["current_call_id"] for e in created["items"]} == {
        a["series_id"]: a.get("scheduled_task_id") for a in answer if a["status"] != "rejected"
    }
    scheduled = (await client.get("/events", params={"type": "call.scheduled"})).json()
    assert sorted(e["data"]["series_id"] for e in scheduled["items"]) == sorted(
        [answer[0]["series_id"], answer[3]["series_id"]]
    )


async def test_a_dry_run_plans_the_first_occurrence_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    items = [{"name": "A", "phone": PHONE, "recurrence": "FREQ=WEEKLY;BYDAY=WE;BYHOUR=8"}]
    (answer,) = (await client.post("/schedule?dry_run=true", json=items)).json()
    assert (answer["status"], answer["scheduled"], answer["series_id"]) == (
        "scheduled", "2026-03-04T14:00:00Z", None)  # fmt: skip
    assert (await client.get("/calls/series")).json()["items"] == []


async def test_an_unknown_series_is_a_404(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/calls/series/ser_nope"),
        await client.post("/calls/series/ser_nope/cancel"),
    ):
        assert response.status_code == 404
        assert response.json()["type"].endswith("series-not-found")


async def test_a_one_off_live_call_for_the_purpose_makes_the_series_pass_over_one(
    client: httpx.AsyncClient, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    first = await start(client, recurrence=WEEKLY_MONDAY_10, purpose="check-in")
    assert (await client.delete(f"/calls/{first['id']}")).status_code == 200
    # Before the series plans its next occurrence, a one-off call takes the purpose.
    one_off = await start(client, purpose="check-in", scheduled="2026-03-09T14:00:00Z")
    await dispatcher.run_pending()
    series = await series_of(client, first["series_id"])
    assert (series["skipped"], series["current_call_id"], series["next_occurrence"]) == (
        1, None, "2026-03-16T14:00:00Z")  # fmt: skip
    assert (await run_call(client, clock, dispatcher, one_off))["status"] == "completed"
    clock.set(datetime(2026, 3, 16, 14, 0, tzinfo=UTC))
    await dispatcher.run_pending()
    third = await current_call(client, first["series_id"])
    assert third["scheduled"] == "2026-03-16T14:00:00Z"


async def test_a_start_in_the_past_anchors_the_rule_and_count_counts_from_it(
    client: httpx.AsyncClient,
) -> None:
    # Mondays from February 2nd: the 5th is today (10:00 local, now), the 4th was last week.
    since = "2026-02-02T10:00:00"
    last = await start(client, recurrence="FREQ=WEEKLY;BYDAY=MO;COUNT=5", scheduled=since)
    assert last["scheduled"] == "2026-03-02T15:00:00Z"
    series = await series_of(client, last["series_id"])
    assert (series["dtstart"], series["next_occurrence"], series["skipped"]) == (
        "2026-02-02T10:00", None, 0)  # fmt: skip
    ended = await client.post(
        "/calls",
        json={"name": "B", "phone": "212-555-0102", "scheduled": since,
              "recurrence": "FREQ=WEEKLY;BYDAY=MO;COUNT=4"},
    )  # fmt: skip
    assert ended.status_code == 422
    assert ended.json()["detail"] == "the recurrence has no occurrence from now on"


async def test_a_rule_none_of_whose_occurrences_can_be_placed_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # No calling time on any day (a tenant pausing its calls): nothing can ever be placed.
    closed = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    await set_calling_policy(client, windows=closed)
    response = await client.post(
        "/calls", json={"name": "A", "phone": PHONE, "recurrence": "FREQ=DAILY;BYHOUR=10;COUNT=2"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("no occurrence of the recurrence can be placed")
    assert (await client.get("/calls/series")).json()["items"] == []
