"""Opt-out state per (tenant, phone, channel): checked before every send, changed by replies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.events import emit
from caretime.messaging.models import ConsentChange, OptOut

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


@dataclass(frozen=True)
class ConsentSource:
    """How a consent statement was given: a reply's keyword and message, or a note given
    through the API or by a voice agent (with the call it came from)."""

    kind: str = "reply"
    keyword: str = ""
    message_id: str | None = None
    note: str | None = None
    related_id: str | None = None


class OptOutState(NamedTuple):
    changed_at: datetime
    keyword: str
    source: str

    def how(self) -> str:
        """How the opt-out was given, in words."""
        if self.source == "reply":
            return f"replied {self.keyword.upper()}" if self.keyword else "replied"
        return "told the voice agent" if self.source == "agent" else "recorded by the tenant"


async def set_opt_out(
    session: AsyncSession,
    tenant_id: str,
    phone: str,
    channels: Iterable[str],
    *,
    opted_out: bool,
    keyword: str = "",
    message_id: str | None = None,
    now: datetime,
    source: ConsentSource | None = None,
) -> bool:
    """Record the number's choice on these channels, and the statement in the consent
    history. Returns whether anything changed."""
    channels = list(channels)
    source = source or ConsentSource("reply", keyword, message_id)
    before = await opted_out_numbers(session, tenant_id, ((phone, c) for c in channels))
    changed = len(before) != (len(channels) if opted_out else 0)
    for channel in channels:
        values = {
            "tenant_id": tenant_id,
            "phone": phone,
            "channel": channel,
            "opted_out": opted_out,
            "keyword": source.keyword[:32],
            "source_message_id": source.message_id,
            "changed_at": now,
            "source": source.kind,
        }
        await session.execute(_upsert(session, values))
        session.add(_history_row(tenant_id, phone, channel, opted_out, source, now))
    await session.flush()
    if changed:
        await _tell(session, tenant_id, phone, channels, opted_out, source.message_id, now)
    return changed


def _history_row(
    tenant_id: str,
    phone: str,
    channel: str,
    opted_out: bool,
    source: ConsentSource,
    now: datetime,
) -> ConsentChange:
    return ConsentChange(
        tenant_id=tenant_id, phone=phone, channel=channel, opted_out=opted_out,
        source=source.kind, keyword=source.keyword[:32] or None, note=source.note,
        message_id=source.message_id, related_id=source.related_id, changed_at=now,
    )  # fmt: skip


async def opt_outs(
    session: AsyncSession, tenant_id: str, phones: Sequence[str], channel: str
) -> dict[str, OptOutState]:
    """The numbers among these that are opted out on the channel, with when and how."""
    statement = select(OptOut.phone, OptOut.changed_at, OptOut.keyword, OptOut.source).where(
        OptOut.tenant_id == tenant_id, OptOut.channel == channel, OptOut.opted_out.is_(True)
    )
    found: dict[str, OptOutState] = {}
    for start in range(0, len(phones), CHUNK):
        chunk = phones[start : start + CHUNK]
        rows = await session.execute(where_one_of(session, statement, OptOut.phone, chunk))
        for phone, changed_at, keyword, kind in rows.all():
            found[phone] = OptOutState(changed_at, keyword, kind)
    return found


async def consent_history(
    session: AsyncSession, tenant_id: str, phone: str, *, limit: int = 100
) -> list[ConsentChange]:
    """The number's consent statements, newest first."""
    rows = await session.scalars(
        select(ConsentChange)
        .where(ConsentChange.tenant_id == tenant_id, ConsentChange.phone == phone)
        .order_by(ConsentChange.id.desc())
        .limit(limit)
    )
    return list(rows)


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
        for k in ("opted_out", "keyword", "source_message_id", "changed_at", "source")
    }
    return statement.on_conflict_do_update(
        index_elements=["tenant_id", "phone", "channel"], set_=keep
    )
