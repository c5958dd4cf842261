"""Screening items before they are planned: an item whose number opted out of calls is
rejected with when and how; one whose number already has a live call for the same purpose
with that call's id and time.

For duplicates this is the friendly check; the guarantee is the partial unique index on live
calls, which refuses a duplicate written by a concurrent request (see `duplicate_reason`).
Screening first also keeps rejected items off the capacity ledger of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.messaging.consent import OptOutState, opt_outs
from caretime.outreach.intake import Intake, ParsedItem
from caretime.outreach.repository import CallRepository, LiveCall
from caretime.policy import Rejected, UndialableNumber
from caretime.policy.phones import default_phone_book

DUPLICATE = "already_scheduled"
OPTED_OUT = "opted_out"


@dataclass(frozen=True)
class Screen:
    """What is known about a batch's numbers: their opt-outs of calls and live calls."""

    opted_out: dict[str, OptOutState]
    live: dict[tuple[str, str], LiveCall]

    def verdict(self, item: Intake, number: str | None) -> Intake:
        """The item, or why it must not be scheduled."""
        if number is None or not isinstance(item, ParsedItem):
            return item
        opt_out = self.opted_out.get(number)
        if opt_out is not None:
            return Rejected(OPTED_OUT, opted_out_reason(opt_out))
        found = None if item.plan.allow_duplicate else self.live.get((number, item.plan.purpose))
        return item if found is None else duplicate_of(found, item.plan.purpose)


async def screen(session: AsyncSession, tenant_id: str, items: list[Intake]) -> list[Intake]:
    """The items, with each whose number opted out of calls or already has a live call for
    the same purpose replaced by its rejection."""
    numbers = [_e164(item) for item in items]
    wanted = sorted({number for number in numbers if number is not None})
    if not wanted:
        return items
    found = await look_up(session, tenant_id, wanted)
    if not (found.opted_out or found.live):
        return items
    return [found.verdict(item, number) for item, number in zip(items, numbers, strict=True)]


async def look_up(session: AsyncSession, tenant_id: str, numbers: Sequence[str]) -> Screen:
    opted_out = await opt_outs(session, tenant_id, numbers, "voice")
    return Screen(opted_out, await CallRepository(session, tenant_id).live_for(numbers))


def opted_out_reason(state: OptOutState) -> str:
    return f"the recipient opted out of calls on {isoformat_z(state.changed_at)} ({state.how()})"


def duplicate_of(live: LiveCall | None, purpose: str) -> Rejected:
    return Rejected(DUPLICATE, duplicate_reason(live, purpose))


def duplicate_reason(live: LiveCall | None, purpose: str) -> str:
    """Why a call is refused as a duplicate, naming the live call when it is known."""
    for_purpose = f' for "{purpose}"' if purpose else ""
    if live is None:
        existing = "a live call"
    elif live.status == "scheduled":
        existing = f"a scheduled call {live.id} at {isoformat_z(live.scheduled_at)}"
    else:
        existing = f"a call in progress {live.id}"
    return (
        f"this number already has {existing}{for_purpose} "
        '(send "allow_duplicate": true to add another)'
    )


def _e164(item: Intake) -> str | None:
    return e164_of(item.plan.phone) if isinstance(item, ParsedItem) else None


def e164_of(phone: str) -> str | None:
    """The number in E.164, or None if it is not dialable (the planner says why)."""
    try:
        found = default_phone_book.lookup(phone)
        return found[0] if found is not None else default_phone_book.parse(phone).e164
    except UndialableNumber:
        return None


async def live_calls(
    session: AsyncSession, tenant_id: str, numbers: Sequence[str]
) -> dict[tuple[str, str], LiveCall]:
    return await CallRepository(session, tenant_id).live_for(sorted(set(numbers)))
