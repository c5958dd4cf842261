"""Screening items before they are planned: an item whose number already has a live call for
the same purpose is rejected with that call's id and time.

This is the friendly check; the guarantee is the partial unique index on live calls, which
refuses a duplicate written by a concurrent request (see `duplicate_reason` for its words).
Screening first also keeps rejected items off the capacity ledger of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.clock import isoformat_z
from caretime.outreach.intake import Intake, ParsedItem
from caretime.outreach.repository import CallRepository, LiveCall
from caretime.policy import Rejected, UndialableNumber
from caretime.policy.phones import default_phone_book

DUPLICATE = "already_scheduled"


async def screen(session: AsyncSession, tenant_id: str, items: list[Intake]) -> list[Intake]:
    """The items, with each that duplicates a live call replaced by its rejection."""
    numbers = [_e164(item) for item in items]
    wanted = sorted({number for number in numbers if number is not None})
    if not wanted:
        return items
    live = await CallRepository(session, tenant_id).live_for(wanted)
    if not live:
        return items
    return [_screened(item, number, live) for item, number in zip(items, numbers, strict=True)]


def _screened(item: Intake, number: str | None, live: dict[tuple[str, str], LiveCall]) -> Intake:
    if number is None or not isinstance(item, ParsedItem) or item.plan.allow_duplicate:
        return item
    found = live.get((number, item.plan.purpose))
    return item if found is None else duplicate_of(found, item.plan.purpose)


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
    if not isinstance(item, ParsedItem) or item.plan.allow_duplicate:
        return None
    return e164_of(item.plan.phone)


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
