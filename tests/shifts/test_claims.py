"""Claims and qualification at the service level: one winner, declines remembered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.shifts.claims import ClaimOutcome, answer_offer
from caretime.shifts.models import Offer
from caretime.shifts.qualify import qualifying_caregivers
from caretime.shifts.service import require_shift
from caretime.shifts.timeline import shift_timeline
from caretime.tenancy.policy import ShiftPolicy
from tests.shifts.support import default_tenant_id, make_caregiver, make_offer, make_shift

pytestmark = pytest.mark.usefixtures("app")


async def _answer(runtime: Runtime, tenant_id: str, offer_id: str, intent: str) -> ClaimOutcome:
    async with transaction(runtime.sessions) as session:
        return await answer_offer(session, tenant_id, offer_id, intent, now=runtime.clock.now())


async def _qualifying(runtime: Runtime, tenant_id: str, shift_id: str) -> list[str]:
    async with runtime.sessions() as session:
        shift = await require_shift(session, tenant_id, shift_id)
        return [
            row.id
            for row in await qualifying_caregivers(
                session, shift, channel="sms", policy=ShiftPolicy()
            )
        ]


async def _offered(runtime: Runtime, tenant_id: str, shift_id: str, *ids: str) -> list[str]:
    return [
        await make_offer(runtime, tenant_id=tenant_id, shift_id=shift_id, caregiver_id=cid)
        for cid in ids
    ]


async def test_first_accept_wins_and_later_ones_hear_it_is_filled(runtime: Runtime) -> None:
    tenant = await default_tenant_id(runtime)
    for n in range(3):
        await make_caregiver(runtime, tenant_id=tenant, id=f"c{n}", roles=["RN"], n=n)
    await make_shift(runtime, tenant_id=tenant, id="s1", location="Ballard")
    first, second, third = await _offered(runtime, tenant, "s1", "c0", "c1", "c2")

    won = await _answer(runtime, tenant, second, "accept")
    assert won.action == "assigned"
    assert "Confirmed" in won.reply
    assert "Ballard" in won.reply
    lost = await _answer(runtime, tenant, first, "accept")
    assert lost.action == "already_filled"
    again = await _answer(runtime, tenant, second, "accept")
    assert again.action == "assigned"
    assert (await _answer(runtime, tenant, third, "maybe")).action == "clarify"

    async with runtime.sessions() as session:
        shift = await require_shift(session, tenant, "s1")
        timeline = await shift_timeline(session, tenant, "s1")
    assert (shift.status, shift.assigned_caregiver_id) == ("filled", "c1")
    kinds = [(e.kind, e.caregiver_id, e.details.get("action")) for e in timeline.entries]
    assert kinds[3:] == [
        ("reply", "c1", "assigned"),
        ("assigned", "c1", None),
        ("reply", "c0", "already_filled"),
        ("reply", "c1", "assigned"),
        ("reply", "c2", "clarify"),
    ]
    assert [k for k, _, _ in kinds[:3]] == ["offer"] * 3


async def test_qualification_role_active_declines_and_overlap(runtime: Runtime) -> None:
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="rn", roles=["RN"], n=1)
    await make_caregiver(runtime, tenant_id=tenant, id="rn-lpn", roles=["LPN", "RN"], n=2)
    await make_caregiver(runtime, tenant_id=tenant, id="lpn", roles=["LPN"], n=3)
    await make_caregiver(runtime, tenant_id=tenant, id="inactive", roles=["RN"], n=4, active=False)
    await make_caregiver(runtime, tenant_id=tenant, id="decliner", roles=["RN"], n=5)
    await make_caregiver(runtime, tenant_id=tenant, id="busy", roles=["RN"], n=6)
    await make_shift(runtime, tenant_id=tenant, id="s1", starts_in=timedelta(hours=4))
    await make_shift(runtime, tenant_id=tenant, id="early", starts_in=timedelta(hours=1), hours=4)
    await make_shift(runtime, tenant_id=tenant, id="later", starts_in=timedelta(hours=12))
    assert await _qualifying(runtime, tenant, "s1") == ["busy", "decliner", "rn", "rn-lpn"]

    [declined] = await _offered(runtime, tenant, "s1", "decliner")
    assert (await _answer(runtime, tenant, declined, "decline")).action == "declined"
    [busy_early] = await _offered(runtime, tenant, "early", "busy")
    assert (await _answer(runtime, tenant, busy_early, "accept")).action == "assigned"
    assert await _qualifying(runtime, tenant, "s1") == ["rn", "rn-lpn"]
    # The overlap rule is about time, not the caregiver: a later shift still qualifies them.
    assert "busy" in await _qualifying(runtime, tenant, "later")


async def test_accept_refused_for_overlapping_assignment(runtime: Runtime) -> None:
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="c1", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant, id="a", starts_in=timedelta(hours=4))
    await make_shift(runtime, tenant_id=tenant, id="b", starts_in=timedelta(hours=6))
    offer_a, offer_b = [
        await make_offer(runtime, tenant_id=tenant, shift_id=s, caregiver_id="c1")
        for s in ("a", "b")
    ]
    assert (await _answer(runtime, tenant, offer_a, "accept")).action == "assigned"
    refused = await _answer(runtime, tenant, offer_b, "accept")
    assert refused.action == "unavailable"
    assert refused.details == {"reason": "you already have a shift at that time"}


async def test_no_claim_once_the_shift_has_started(runtime: Runtime) -> None:
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="c1", roles=["RN"], n=1)
    await make_shift(runtime, tenant_id=tenant, id="s1", starts_in=timedelta(minutes=30))
    [offer] = await _offered(runtime, tenant, "s1", "c1")
    runtime.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    outcome = await _answer(runtime, tenant, offer, "accept")
    assert outcome.action == "unavailable"
    assert outcome.details == {"reason": "it has started"}


async def test_the_same_answer_again_is_in_the_trail_and_leaves_the_offer_as_it_was(
    runtime: Runtime, clock: FrozenClock
) -> None:
    tenant = await default_tenant_id(runtime)
    await make_caregiver(runtime, tenant_id=tenant, id="c0", roles=["RN"], n=0)
    await make_shift(runtime, tenant_id=tenant, id="s1")
    (offer_id,) = await _offered(runtime, tenant, "s1", "c0")
    first_no = clock.now()
    assert (await _answer(runtime, tenant, offer_id, "decline")).action == "declined"
    clock.advance(timedelta(minutes=5))
    assert (await _answer(runtime, tenant, offer_id, "decline")).action == "declined"

    async with runtime.sessions() as session:
        offer = await session.get(Offer, (tenant, offer_id))
        timeline = await shift_timeline(session, tenant, "s1")
    assert offer is not None
    # The offer keeps its answer and when it was first given (no second write of its row).
    assert (offer.reply_intent, offer.replied_at) == ("decline", first_no)
    replies = [e for e in timeline.entries if e.kind == "reply"]
    assert [e.details.get("action") for e in replies] == ["declined", "declined"]
