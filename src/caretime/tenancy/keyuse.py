"""When each API key was last used, noted in memory by the request and written in batches: no
request writes for it, and a process writes at most one UPDATE statement per flush
(`FLUSH_SECONDS`), for the keys used since, each at most once a minute (the resolution)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caretime.db import transaction
from caretime.tenancy.models import ApiKey

# Shown to the nearest minute: writing it more often would turn reads into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
FLUSH_SECONDS = 10.0
log = logging.getLogger("caretime.tenancy")


_KEYS = cast(Table, ApiKey.__table__)
# Another process may have written a later use meanwhile: it is kept.
_LATER_USE = (
    update(_KEYS)
    .where(
        _KEYS.c.id == bindparam("key_id"),
        or_(_KEYS.c.last_used_at.is_(None), _KEYS.c.last_used_at < bindparam("at")),
    )
    .values(last_used_at=bindparam("at"))
)


def needs_touch(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


class KeyUses:
    """Uses not yet written, by key id. One per process (see `key_uses_of`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.pending: dict[str, datetime] = {}
        # What the flushes wrote, by key: a request served from the key cache may carry a
        # last use read before a flush, and must not note the key again for it (one entry a
        # key: it grows with the keys in use, not with the requests).
        self.written: dict[str, datetime] = {}

    def note(self, key_id: str, stored: datetime | None, now: datetime) -> None:
        """A use of `key_id` at `now`; `stored` is the last use the database holds."""
        if needs_touch(self.shown(key_id, stored), now):
            self.pending[key_id] = now

    def shown(self, key_id: str, stored: datetime | None) -> datetime | None:
        """The last use as this process knows it (the database's, or a later one not yet
        written)."""
        noted = self.pending.get(key_id) or self.written.get(key_id)
        if noted is None or (stored is not None and stored >= noted):
            return stored
        return noted

    async def flush(self) -> int:
        """Write the pending uses in one statement; on failure they stay pending."""
        uses, self.pending = self.pending, {}
        if not uses:
            return 0
        try:
            async with transaction(self.sessions) as session:
                await session.execute(
                    _LATER_USE, [{"key_id": key_id, "at": at} for key_id, at in uses.items()]
                )
        except BaseException:
            for key_id, at in uses.items():
                self.pending.setdefault(key_id, at)
            raise
        self.written.update(uses)
        return len(uses)

    async def flush_every(self, seconds: float = FLUSH_SECONDS) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("key_use_flush_failed", extra={"fields": {"error": type(exc).__name__}})
