"""First yes wins (DESIGN decision 14), the part shared by every offer of a scarce thing to
several people (an open shift to caregivers, a freed appointment time to the waitlist):
each offer's message key names what it offers, in which round, to whom, so a retried round
texts nobody twice; and the claim is one conditional UPDATE of the offered thing from `open`,
so under any concurrency at most one caller sees a row changed. No lock is held beyond it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.db import note_contended_lock

OPEN = "open"


def offer_key(kind: str, subject_id: str, round_number: int, to_kind: str, to_id: str) -> str:
    """The idempotency key of one offer message, e.g. shift:42:round:1:caregiver:7."""
    return f"{kind}:{subject_id}:round:{round_number}:{to_kind}:{to_id}"


async def claim_first(
    session: AsyncSession,
    model: Any,
    *,
    tenant_id: str,
    subject_id: str,
    values: dict[str, Any],
    conditions: Sequence[ColumnElement[bool]] = (),
) -> bool:
    """THE claim: move the offered row out of `open` (to what `values` say) if it is still
    open and `conditions` hold. True for exactly one of any number of racing callers."""
    result = await session.execute(
        update(model)
        .where(
            model.tenant_id == tenant_id,
            model.id == subject_id,
            model.status == OPEN,
            *conditions,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    won: bool = getattr(result, "rowcount", 0) == 1
    if won:
        note_contended_lock(session)  # every other yes to it waits for this commit
    return won
