"""Replies that are not a plain yes or no: a conditional yes goes to the coordinator (an
alert of kind `question`) and is never a claim; an unclear reply is answered according to
where the shift stands, so nobody is offered a shift that is no longer open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts import texts
from caretime.shifts.alerts import alert, caregiver_label
from caretime.shifts.events import shift_changed
from caretime.shifts.models import Caregiver, Offer, Shift
from caretime.shifts.overtime import over_weekly_hours
from caretime.shifts.service import shift_policy


async def conditional_yes(
    session: AsyncSession,
    shift: Shift,
    offer: Offer,
    text: str,
    *,
    message_id: str | None,
    now: datetime,
) -> tuple[str, str]:
    """(action, reply) for "yes, but...": the coordinator gets the words; the caregiver is
    told so, and how to take the shift as offered if it is still open."""
    caregiver = await session.get(Caregiver, (shift.tenant_id, offer.caregiver_id))
    name = caregiver.name if caregiver else offer.caregiver_id
    question = texts.question_alert(shift, name, offer.caregiver_id, text)
    await alert(
        session, shift, "question", question, key=f"question:{message_id or offer.id}", now=now
    )
    await shift_changed(
        session, shift, "question", now=now, caregiver_id=offer.caregiver_id, offer_id=offer.id
    )
    if shift.status == "open":
        return "clarify", texts.question_open_text(shift)
    return "clarify", texts.question_closed_text(shift, offer.caregiver_id)


async def would_go_over(
    session: AsyncSession, shift: Shift, caregiver_id: str, *, now: datetime
) -> bool:
    """The overtime guard at claim time (offered before the hours filled up): the coordinator
    is told. Like the overlap rule, two claims of one caregiver in the same instant are not
    serialised against each other."""
    policy = await shift_policy(session, shift.tenant_id)
    if not await over_weekly_hours(session, shift, policy, only=caregiver_id):
        return False
    who = await caregiver_label(session, shift.tenant_id, caregiver_id)
    text = texts.overtime_alert(shift, who)
    await alert(session, shift, "overtime", text, key=f"overtime:{caregiver_id}", now=now)
    return True


def unclear(shift: Shift, caregiver_id: str) -> str:
    """The reply to a reply that is neither yes nor no."""
    if shift.status == "open":
        return texts.clarify_text(shift)
    return texts.closed_text(shift, caregiver_id)
