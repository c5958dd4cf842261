"""Opt-out state per (tenant, phone, channel): checked before every send, changed by replies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.events import emit
from caretime.messaging.models import OptOut

CHUNK = 1000
# Replies the law requires even to a number that opted out: the one confirmation of a STOP,
# and HELP. Messages related to this kind skip every consent check, at queueing and sending.
COMPLIANCE_KIND = "messaging.compliance"


def needs_consent(related_kind: str | None) -> bool:
    return related_kind != COMPLIANCE_KIND


async def opted_out_numbers(
    session: AsyncSession, tenant_id: str, numbers: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (phone, channel) pairs are opted out."""
    wanted = set(numbers)
    phones = sorted({phone for phone, _ in wanted})
    found: set[tuple[str, str]] = set()
    opted_out = select(OptOut.phone, OptOut.channel).where(
        OptOut.tenant_id == tenant_id, OptOut.opted_out.is_(True)
    )
    for start in range(0, len(phones), CHUNK):
        chunk = phones[start : start + CHUNK]
        rows = await session.execute(where_one_of(session, opted_out, OptOut.phone, chunk))
        found.update((phone, channel) for phone, channel in rows.all())
    return found & wanted


async def set_opt_out(
    session: AsyncSession,
    tenant_id: str,
    phone: str,
    channels: Iterable[str],
    *,
    opted_out: bool,
    keyword: str,
    message_id: str | None,
    now: datetime,
) -> bool:
    """Record the number's choice on these channels. Returns whether anything changed."""
    channels = list(channels)
    before = await opted_out_numbers(session, tenant_id, ((phone, c) for c in channels))
    changed = len(before) != (len(channels) if opted_out else 0)
    for channel in channels:
        values = {
            "tenant_id": tenant_id,
            "phone": phone,
            "channel": channel,
            "opted_out": opted_out,
            "keyword": keyword[:32],
            "source_message_id": message_id,
            "changed_at": now,
        }
        await session.execute(_upsert(session, values))
    if changed:
        await _tell(session, tenant_id, phone, channels, opted_out, message_id, now)
    return changed


async def _tell(
    session: AsyncSession,
    tenant_id: str,
    phone: str,
    channels: list[str],
    opted_out: bool,
    message_id: str | None,
    now: datetime,
) -> None:
    """The number is the subject: the systems that hear of an opt-out must know whose it is.
    The keyword (the message's body) stays out."""
    data = {"phone": phone, "channels": channels, "opted_out": opted_out,
            "message_id": message_id}  # fmt: skip
    await emit(session, tenant_id=tenant_id,
               type="message.opted_out" if opted_out else "message.opted_in",
               subject=("phone", phone), data=data, now=now)  # fmt: skip


def _upsert(session: AsyncSession, values: dict[str, Any]) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(OptOut).values(values)
    keep = {
        k: statement.excluded[k]
        for k in ("opted_out", "keyword", "source_message_id", "changed_at")
    }
    return statement.on_conflict_do_update(
        index_elements=["tenant_id", "phone", "channel"], set_=keep
    )
