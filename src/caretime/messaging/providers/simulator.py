"""The simulator: a phone network inside caretime, for development, demos and tests.

Every outcome is a timeline of (delay after sending, status). The send returns the first
step; each later step is reached by a `messaging.poll` dispatch job scheduled at its moment,
so a frozen clock drives the network exactly like real time. What each simulated phone
received is the set of messages this provider accepted (see GET /simulator/messages).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from caretime.config import Settings
from caretime.ids import new_id
from caretime.messaging.phones import to_e164
from caretime.messaging.providers.base import (
    OutboundRequest,
    PermanentProviderError,
    PollRequest,
    SendOutcome,
    SendReceipt,
    StatusReport,
    send_each,
)

Timeline = tuple[tuple[timedelta, str], ...]
SECOND = timedelta(seconds=1)

TIMELINES: dict[str, Timeline] = {
    "sms.delivered": ((0 * SECOND, "sent"), (2 * SECOND, "delivered")),
    "sms.failed": ((0 * SECOND, "sent"), (2 * SECOND, "failed")),
    "voice.completed": (
        (0 * SECOND, "queued"),
        (1 * SECOND, "ringing"),
        (6 * SECOND, "in_progress"),
        (36 * SECOND, "completed"),
    ),
    "voice.no_answer": (
        (0 * SECOND, "queued"),
        (1 * SECOND, "ringing"),
        (31 * SECOND, "no_answer"),
    ),
    "voice.busy": ((0 * SECOND, "queued"), (1 * SECOND, "busy")),
    "voice.voicemail": (
        (0 * SECOND, "queued"),
        (1 * SECOND, "ringing"),
        (21 * SECOND, "voicemail"),
    ),
    "voice.failed": ((0 * SECOND, "queued"), (1 * SECOND, "failed")),
}


class SimulatorProvider:
    name = "simulator"
    # Its phones "receive" what it accepted: the hand-over is the sending job's own write.
    in_database = True

    def __init__(self, settings: Settings) -> None:
        self.from_number: str | None = settings.simulator_from
        self.rate_per_second = settings.simulator_rate_limit
        self.no_answer_digits = settings.simulator_no_answer_digits
        self.busy_digits = settings.simulator_busy_digits
        self.machine_digits = settings.simulator_machine_digits
        self.failure_rate = settings.simulator_failure_rate
        self.seed = settings.simulator_seed

    def outcome(self, channel: str, to: str, key: str) -> str:
        """Which timeline a message follows: failure (by seeded chance), then the digit rules."""
        if self._fails(key):
            return f"{channel}.failed"
        if channel == "voice" and to[-1:] in self.busy_digits:
            return "voice.busy"
        if channel == "voice" and to[-1:] in self.no_answer_digits:
            return "voice.no_answer"
        if channel == "voice" and to[-1:] in self.machine_digits:
            return "voice.voicemail"
        return "sms.delivered" if channel == "sms" else "voice.completed"

    def _fails(self, key: str) -> bool:
        if self.failure_rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return random.Random(digest).random() < self.failure_rate

    async def send(self, request: OutboundRequest) -> SendReceipt:
        if to_e164(request.to) is None:
            raise PermanentProviderError("not a dialable number")
        outcome = self.outcome(
            request.channel, request.to, _key(request.idempotency_key, request.message_id)
        )
        timeline = TIMELINES[outcome]
        first, then = timeline[0][1], timeline[1][0]
        report = StatusReport(first, first, {"outcome": outcome}, poll_at=request.now + then)
        return SendReceipt(new_id("sim"), report)

    async def send_batch(self, requests: Sequence[OutboundRequest]) -> list[SendOutcome]:
        """The whole batch in one call: each message accepted or refused on its own."""
        return await send_each(self, requests)

    async def poll(self, request: PollRequest) -> StatusReport:
        key = _key(request.idempotency_key, request.message_id)
        timeline = TIMELINES[self.outcome(request.channel, request.to, key)]
        statuses = [status for _, status in timeline]
        step = statuses.index(request.status) + 1 if request.status in statuses else 1
        if step >= len(timeline):
            return StatusReport(None)
        delay, status = timeline[step]
        if request.sent_at + delay > request.now:
            return StatusReport(None, poll_at=request.sent_at + delay)
        following = timeline[step + 1][0] if step + 1 < len(timeline) else None
        poll_at = None if following is None else request.sent_at + following
        raw = {"step": step, **_at_the_machine(status, request.context)}
        return StatusReport(status, status, raw, poll_at=poll_at)


def _at_the_machine(status: str, context: dict[str, Any] | None) -> dict[str, Any]:
    """What the simulated mailbox recorded when a machine answered: the message left, if the
    sender asked for one (see Message.context "on_machine")."""
    on_machine = (context or {}).get("on_machine") or {}
    if status != "voicemail" or on_machine.get("action") != "leave_message":
        return {}
    return {"left_message": on_machine.get("message")}


def _key(idempotency_key: str | None, message_id: str) -> str:
    return idempotency_key or message_id
