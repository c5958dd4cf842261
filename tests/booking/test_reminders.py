"""Visit reminders over the API and the job queue: planned on confirm at 24 h and 2 h before,
pulled earlier out of the patient's quiet hours, moved on reschedule, dropped on cancel,
answered by SMS — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from caretime.booking.reminders import REMIND
from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.dispatch.worker import Dispatcher
from caretime.messaging.models import Message
from caretime.runtime import Runtime
from tests.booking.support import make_availability, make_provider

# The clock starts at 2026-03-02T15:00Z. 4 March is EST in New York (UTC-5), PST in
# Seattle (UTC-8); quiet hours are 21:00–08:00 in the patient's zone.
NEW_YORK_PHONE = "+12125550123"
SEATTLE_PHONE = "+12065550123"
ELEVEN_EST = "2026-03-04T16:00:00Z"  # 08:00 PST


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture
async def clinic(client: httpx.AsyncClient) -> None:
    await make_provider(client)
    await make_availability(
        client, windows={"date": "2026-03-04", "start": "08:00", "end": "15:00"}
    )


async def confirmed_visit(client: httpx.AsyncClient, slot_start: str, phone: str) -> str:
    body = {"provider_id": "dr-jekyll", "slot_start": slot_start, "client_id": "p", "phone": phone}
    hold = await client.post("/reservations", json=body)
    assert hold.status_code == 201, hold.text
    visit_id: str = hold.json()["id"]
    assert (await client.post(f"/reservations/{visit_id}/confirm")).status_code == 200
    return visit_id


async def planned(runtime: Runtime) -> list[str]:
    async with transaction(runtime.sessions) as session:
        jobs = await session.scalars(
            select(Job).where(Job.kind == REMIND, Job.status == "queued").order_by(Job.run_at)
        )
        return [job.run_at.isoformat().replace("+00:00", "Z") for job in jobs]


async def texts_to(runtime: Runtime, phone: str, *, reminders_only: bool = False) -> list[str]:
    async with transaction(runtime.sessions) as session:
        bodies = await session.scalars(
            select(Message.body)
            .where(Message.to_phone == phone, Message.direction == "outbound")
            .order_by(Message.created_at, Message.id)
        )
        texts = list(bodies)
    return [t for t in texts if t.startswith("Reminder:")] if reminders_only else texts


async def reply(client: httpx.AsyncClient, phone: str, body: str) -> dict[str, Any]:
    response = await client.post("/messages/inbound", json={"from": phone, "body": body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.usefixtures("clinic")
async def test_a_confirmed_visit_is_reminded_24h_and_2h_before(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    await confirmed_visit(client, ELEVEN_EST, NEW_YORK_PHONE)
    assert await planned(runtime) == ["2026-03-03T16:00:00Z", "2026-03-04T14:00:00Z"]
    clock.set(utc("2026-03-03T15:59:00Z"))
    await dispatcher.run_pending()
    assert await texts_to(runtime, NEW_YORK_PHONE) == []
    clock.set(utc("2026-03-03T16:00:00Z"))
    await dispatcher.run_pending()
    reminder = (
        "Reminder: your appointment with Dr. Jekyll on Wed Mar 4, 2026 at 11:00 EST. "
        "Reply YES to confirm you will come, NO to cancel, or R to reschedule."
    )
    assert await texts_to(runtime, NEW_YORK_PHONE) == [reminder]
    assert (await reply(client, NEW_YORK_PHONE, "yes"))["action"] == "attending"
    clock.set(utc("2026-03-04T14:00:00Z"))
    await dispatcher.run_pending()
    assert (await texts_to(runtime, NEW_YORK_PHONE))[-1] == reminder
    assert len(await texts_to(runtime, NEW_YORK_PHONE)) == 3  # reminder, thanks, reminder


@pytest.mark.usefixtures("clinic")
async def test_reminders_that_fall_in_quiet_hours_go_at_the_last_allowed_minute_before(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # 09:00 EST is 06:00 in Seattle: both reminders (06:00 and 04:00 PST) are quiet, so they
    # go at 20:59 PST the evening before each.
    await confirmed_visit(client, "2026-03-04T14:00:00Z", SEATTLE_PHONE)
    assert await planned(runtime) == ["2026-03-03T04:59:00Z", "2026-03-04T04:59:00Z"]


@pytest.mark.usefixtures("clinic")
async def test_a_late_job_waits_for_the_patients_morning(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    await confirmed_visit(client, ELEVEN_EST, NEW_YORK_PHONE)
    clock.set(utc("2026-03-04T03:00:00Z"))  # workers were down; now 22:00 in New York
    await dispatcher.run_pending()
    assert await texts_to(runtime, NEW_YORK_PHONE) == []
    clock.set(utc("2026-03-04T13:00:00Z"))  # 08:00 EST
    await dispatcher.run_pending()
    assert len(await texts_to(runtime, NEW_YORK_PHONE)) == 1


@pytest.mark.usefixtures("clinic")
async def test_reminders_move_with_a_rescheduled_visit(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    visit_id = await confirmed_visit(client, ELEVEN_EST, NEW_YORK_PHONE)
    moved = await client.post(
        f"/reservations/{visit_id}/reschedule", json={"slot_start": "2026-03-04T18:00:00Z"}
    )
    assert moved.status_code == 200, moved.text
    assert await planned(runtime) == ["2026-03-03T18:00:00Z", "2026-03-04T16:00:00Z"]
    clock.set(utc("2026-03-03T18:00:00Z"))
    await dispatcher.run_pending()
    assert await texts_to(runtime, NEW_YORK_PHONE, reminders_only=True) == [
        "Reminder: your appointment with Dr. Jekyll on Wed Mar 4, 2026 at 13:00 EST. "
        "Reply YES to confirm you will come, NO to cancel, or R to reschedule."
    ]


@pytest.mark.usefixtures("clinic")
async def test_a_cancelled_visit_is_never_reminded(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    visit_id = await confirmed_visit(client, ELEVEN_EST, NEW_YORK_PHONE)
    await client.post(f"/reservations/{visit_id}/cancel")
    assert await planned(runtime) == []
    clock.set(utc("2026-03-04T15:00:00Z"))
    await dispatcher.run_pending()
    assert await texts_to(runtime, NEW_YORK_PHONE, reminders_only=True) == []


@pytest.mark.usefixtures("clinic")
async def test_visits_without_a_phone_or_only_held_get_no_reminders(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = {"provider_id": "dr-jekyll", "slot_start": ELEVEN_EST, "client_id": "p"}
    hold = (await client.post("/reservations", json=body)).json()
    await client.post(f"/reservations/{hold['id']}/confirm")
    await client.post(
        "/reservations", json={**body, "slot_start": "2026-03-04T17:00:00Z", "phone": "2125550100"}
    )
    assert await planned(runtime) == []


@pytest.mark.usefixtures("clinic")
async def test_policy_sets_the_reminders(client: httpx.AsyncClient, runtime: Runtime) -> None:
    patched = await client.patch(
        "/tenants/me/policy",
        json={"booking": {"reminders": ["48h", {"before": "30m", "channel": "voice"}]}},
    )
    assert patched.json()["booking"]["reminders"] == ["2d", {"before": "30m", "channel": "voice"}]
    await confirmed_visit(client, ELEVEN_EST, NEW_YORK_PHONE)
    assert await planned(runtime) == ["2026-03-02T16:00:00Z", "2026-03-04T15:30:00Z"]
    too_many = await client.patch("/tenants/me/policy", json={"booking": {"reminders": ["1h"] * 6}})
    assert too_many.status_code == 422


@pytest.mark.usefixtures("clinic")
async def test_no_to_a_reminder_asks_first_and_yes_then_cancels(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, dispatcher: Dispatcher
) -> None:
    visit_id = await confirmed_visit(client, ELEVEN_EST, NEW_YORK_PHONE)
    clock.set(utc("2026-03-03T16:00:00Z"))
    await dispatcher.run_pending()
    asked = await reply(client, NEW_YORK_PHONE, "no")
    assert asked["action"] == "cancel_asked"
    assert (await texts_to(runtime, NEW_YORK_PHONE))[-1] == (
        "Reply YES to cancel your visit with Dr. Jekyll on Wed Mar 4, 2026 at 11:00 EST, "
        "or NO to keep it."
    )
    assert (await client.get(f"/reservations/{visit_id}")).json()["status"] == "confirmed"
    assert (await reply(client, NEW_YORK_PHONE, "YES"))["action"] == "cancelled"
    assert (await client.get(f"/reservations/{visit_id}")).json()["status"] == "cancelled"
    assert await planned(runtime) == []
