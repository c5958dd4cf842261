"""Valid API keys as a key check read them, kept by one process for a few seconds
(`CARETIME_KEY_CACHE_SECONDS`), so that a request whose key was checked a moment ago runs no
statement for it. The bound is on the cache's age, not on the request: an entry is served
for at most `seconds` after the statement that read it, so a key revoked anywhere is refused
by every process within that bound (docs/api.md, "The API key").

Its time is `time.monotonic`, never the runtime's clock: the clock is business time (tests
freeze it and move it by hours), while this bound is about how stale a read may be in real
time, which a frozen clock would stretch forever and a moved one would cut to nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice

from caretime.tenancy.service import KeyCheck

# Valid keys used within `seconds` (unknown keys are never kept): far more than a
# deployment's keys, so it only stops memory from growing without bound.
MAX_ENTRIES = 10_000


class KeyCache:
    """Key hash → (its check, when it stops being served). One per process (`keys_of`)."""

    def __init__(
        self,
        seconds: float,
        *,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.monotonic = monotonic
        # In insertion order, which is expiry order (every entry lives `seconds`), so the
        # oldest entries are the first ones.
        self._entries: dict[str, tuple[KeyCheck, float]] = {}
        # Bumped by every `forget`: a check read before it is not kept (see `put`).
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_hash: str) -> KeyCheck | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[1] <= self.monotonic():
            del self._entries[key_hash]
            return None
        return entry[0]

    def put(self, key_hash: str, check: KeyCheck, read_in_generation: int) -> None:
        """Keep a check read by a statement that began in `read_in_generation`. If a key was
        forgotten since (a revocation committed meanwhile), the read may predate it and is
        not kept: the next request reads again."""
        if self.seconds <= 0 or read_in_generation != self.generation:
            return
        now = self.monotonic()
        self._entries.pop(key_hash, None)  # re-inserted at the end: expiry order holds
        self._drop_expired(now)
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = (check, now + self.seconds)

    def forget(self, key_id: str) -> None:
        """Stop serving `key_id` from this process at once (it was revoked)."""
        self.generation += 1
        for key_hash in [h for h, (check, _) in self._entries.items() if check.key_id == key_id]:
            del self._entries[key_hash]

    def _drop_expired(self, now: float) -> None:
        expired = 0
        for _, expires in self._entries.values():
            if expires > now:
                break
            expired += 1
        for key_hash in list(islice(self._entries, expired)):
            del self._entries[key_hash]
